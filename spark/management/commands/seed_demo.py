"""`python manage.py seed_demo`: the demo world of the two pilot metros, Nashville and New Orleans.

Idempotent and drawn from a fixed seed (see spark/demo/__init__.py); this command reads the
arguments, draws the plan, applies it with the builders of spark/demo/ in one transaction, and
reports what it created and restored.
"""

from datetime import date
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from drivers.models import Driver
from orders.models import Batch, Order
from spark.demo.bookkeeping import Counter
from spark.demo.drivers import put_on_duty, seed_drivers
from spark.demo.history import seed_history
from spark.demo.metros import ZONES
from spark.demo.orders import seed_batches, seed_orders
from spark.demo.people import DEMO_PASSWORD, DemoPassword, seed_staff
from spark.demo.plan import Plan, build_plan
from spark.demo.stores import seed_api_key, seed_slots, seed_stores, seed_zones
from stores.models import Store, Zone


class Command(BaseCommand):
    help = "Load the idempotent demo world (Nashville and New Orleans). Safe to run any number of times."

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            help="Treat this day (YYYY-MM-DD) as today in every zone instead of the real local date.",
        )
        parser.add_argument(
            "--no-history",
            action="store_true",
            help="Leave out the money history (spark.demo.history: delivered batches, pay, payouts).",
        )

    def handle(self, *args, **options):
        started = timezone.now()
        if options.get("date"):
            try:
                forced = date.fromisoformat(options["date"])
            except ValueError as exc:
                raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from None
            days = {z["slug"]: forced for z in ZONES}
        else:
            days = {z["slug"]: timezone.localdate(timezone=ZoneInfo(z["timezone"])) for z in ZONES}
        plan = build_plan(days)
        counter = Counter()
        password = DemoPassword()
        with transaction.atomic():
            zones = seed_zones(counter)
            stores = seed_stores(counter, zones)
            first_store = stores[ZONES[0]["stores"][0]["number"]]
            staff = seed_staff(counter, password, first_store)
            seed_api_key(counter, first_store, created_by=staff.ops)
            seed_slots(counter, stores, plan.slots)
            seed_orders(counter, stores, plan.orders)
            seed_batches(counter, stores, plan.batches, staff, warn=self.stderr.write)
            seed_drivers(counter, password, zones, plan.drivers, ops=staff.ops)
            put_on_duty(first_store, warn=self.stderr.write)
        # Outside the transaction above: payouts and the tips' sweep call the payment backend
        # outside transactions, as their tasks do.
        if not options.get("no_history"):
            seed_history(counter, stores, staff, warn=self.stderr.write)
        self._summary(plan, counter, zones, stores, (timezone.now() - started).total_seconds())

    def _summary(
        self, plan: Plan, counter: Counter, zones: dict[str, Zone], stores: dict[str, Store], seconds: float
    ) -> None:
        created = ", ".join(f"{n} {k}" for k, n in counter.created.items() if n) or "nothing new"
        updated = ", ".join(f"{n} {k}" for k, n in counter.updated.items() if n)
        day = ", ".join(f"{slug} {d.isoformat()}" for slug, d in plan.days.items())
        out = self.stdout
        out.write(self.style.SUCCESS(f"Demo world ready in {seconds:.1f}s (today: {day})."))
        out.write(f"  Created: {created}.")
        if updated:
            out.write(f"  Restored: {updated}.")
        drivers = Driver.objects.filter(home_zone__in=zones.values())
        by_status = ", ".join(f"{s} {drivers.filter(status=s).count()}" for s in Driver.Status.values)
        out.write(
            f"  In the demo zones: {Store.objects.filter(zone__in=zones.values()).count()} stores, "
            f"{Order.objects.filter(store__in=stores.values()).count()} orders, "
            f"{Batch.objects.filter(store__in=stores.values(), status=Batch.Status.PUBLISHED).count()} "
            f"published batches, {drivers.count()} drivers ({by_status})."
        )
        out.write(
            f"  Logins (password {DEMO_PASSWORD}): ops@spark.test, associate@spark.test, manager@spark.test, "
            "driver1@spark.test ... driver10@spark.test"
        )
        out.write(f"  Store API key (store #{ZONES[0]['stores'][0]['number']}): {settings.SPARK_DEMO_API_KEY}")
