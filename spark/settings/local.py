"""The embedded default for `make run`: SQLite + filesystem broker unless DATABASE_URL / REDIS_URL."""

from spark import vapidkeys

from .base import *  # noqa: F403
from .base import VAR_DIR, env

# Beat's schedule file (CELERY_BEAT_SCHEDULE_FILENAME) and uploads live here on PostgreSQL +
# Redis too, not only in the embedded default whose SQLite file and broker folders need it.
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-insecure-key-for-make-run-only")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# Demo ops account may reach the admin without TOTP here, and only here.
SPARK_ADMIN_MFA_EXEMPT_EMAILS = ["ops@spark.test"]

# Web push works out of the box: with no VAPID keys configured, a pair is made once under var/
# (git-ignored) and kept, so subscribed browsers stay subscribed across restarts. Configured
# keys (the environment, .env) always win; production requires them (production.py).
if not (env("SPARK_VAPID_PRIVATE_KEY", default="") or env("SPARK_VAPID_PUBLIC_KEY", default="")):
    _vapid = vapidkeys.kept_pair(VAR_DIR / "vapid-private-key.pem")
    SPARK_VAPID_PRIVATE_KEY = _vapid.private_key
    SPARK_VAPID_PUBLIC_KEY = _vapid.public_key
    SPARK_VAPID_SUBJECT = env("SPARK_VAPID_SUBJECT", default="mailto:ops@spark.test")
