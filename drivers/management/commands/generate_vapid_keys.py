"""Print a fresh VAPID key pair for Web Push, as lines to paste into .env.

    python manage.py generate_vapid_keys [--subject mailto:ops@example.com] [--pem]

The private key is printed as base64url of the raw 32-byte P-256 key (one line, what pywebpush
reads) or, with --pem, as a PKCS8 PEM with its newlines escaped as \\n for a one-line env var.
The public key is the browser's applicationServerKey (base64url of the uncompressed point).
Changing keys invalidates every stored browser subscription: drivers re-subscribe on next visit.
"""

from django.core.management.base import BaseCommand, CommandError

from spark import vapidkeys


class Command(BaseCommand):
    help = "Generate a VAPID key pair for Web Push and print SPARK_VAPID_* lines for .env."

    def add_arguments(self, parser):
        parser.add_argument(
            "--subject",
            default="mailto:ops@example.com",
            help="Contact for push services, a mailto: or https: URL (default: %(default)s).",
        )
        parser.add_argument("--pem", action="store_true", help="Print the private key as PEM (escaped newlines).")

    def handle(self, *args, subject: str, pem: bool, **options):
        if not subject.startswith(("mailto:", "https://")):
            raise CommandError("--subject must be a mailto: or https: URL, e.g. mailto:ops@example.com")
        pair = vapidkeys.new_pair(pem=pem)
        private = pair.private_key
        if pem:  # one line for an env var: the newlines escaped, the value quoted
            one_line = private.strip().replace("\n", "\\n")
            private = f'"{one_line}"'
        self.stdout.write(f"SPARK_VAPID_PRIVATE_KEY={private}")
        self.stdout.write(f"SPARK_VAPID_PUBLIC_KEY={pair.public_key}")
        self.stdout.write(f"SPARK_VAPID_SUBJECT={subject}")
