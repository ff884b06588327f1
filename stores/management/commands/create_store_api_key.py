"""`manage.py create_store_api_key <store_number> [--name NAME]`: prints a new key once."""

from django.core.management.base import BaseCommand, CommandError

from spark.errors import DomainError
from stores.models import Store
from stores.services import store_api_key_create


class Command(BaseCommand):
    help = "Create an API key for a store's e-commerce integration and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("store_number", help="The chain's store number, e.g. 1001.")
        parser.add_argument("--name", default="e-commerce", help="What the key is for (default: e-commerce).")

    def handle(self, *args, store_number: str, name: str, **options):
        store = Store.objects.filter(number=store_number.strip().lstrip("#")).first()
        if store is None:
            raise CommandError(f"No store with number {store_number!r}.")
        try:
            key, raw = store_api_key_create(store=store, name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"Created key {key.prefix}… ({key.name!r}) for store #{store.number} {store.name}.\n"
            "Copy it now: only its hash is stored, it cannot be shown again.\n"
            "Use it as the header  Authorization: Api-Key <key>"
        )
        # The key alone on stdout, so scripts can capture it: KEY=$(manage.py create_store_api_key 1001)
        self.stdout.write(raw)
