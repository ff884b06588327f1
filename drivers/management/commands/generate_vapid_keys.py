"""Print a fresh VAPID key pair for Web Push, as lines to paste into .env.

    python manage.py generate_vapid_keys [--subject mailto:ops@example.com] [--pem]

The private key is printed as base64url of the raw 32-byte P-256 key (one line, what pywebpush
reads) or, with --pem, as a PKCS8 PEM with its newlines escaped as \\n for a one-line env var.
The public key is the browser's applicationServerKey (base64url of the uncompressed point).
Changing keys invalidates every stored browser subscription: drivers re-subscribe on next visit.
"""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand, CommandError
from py_vapid.utils import b64urlencode


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
        key = ec.generate_private_key(ec.SECP256R1())
        if pem:
            private = (
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                .decode()
                .strip()
                .replace("\n", "\\n")
            )
            private = f'"{private}"'
        else:
            private = b64urlencode(key.private_numbers().private_value.to_bytes(32, "big"))
        public = b64urlencode(
            key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        self.stdout.write(f"SPARK_VAPID_PRIVATE_KEY={private}")
        self.stdout.write(f"SPARK_VAPID_PUBLIC_KEY={public}")
        self.stdout.write(f"SPARK_VAPID_SUBJECT={subject}")
