"""Production: every secret comes from the environment with no default, and unsafe choices refuse to start."""

from django.core.exceptions import ImproperlyConfigured

from spark import vapidkeys

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must not be on in production.")

SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: a missing secret stops start-up
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
DATABASES = {"default": env.db("DATABASE_URL")}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Production runs on PostgreSQL: DATABASE_URL must be postgres://.")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
# Rate limits (DRF throttles, allauth, the tracking page) must be shared by every web
# process: the cache lives in Redis. Use another database number than the broker's.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
    }
}

STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
SPARK_PAYMENT_BACKEND = env("SPARK_PAYMENT_BACKEND", default="stripe")
if SPARK_PAYMENT_BACKEND == "sandbox":
    raise ImproperlyConfigured("The sandbox payment backend is refused in production.")
SPARK_SCREENING_WEBHOOK_SECRET = env("SPARK_SCREENING_WEBHOOK_SECRET")
SPARK_PUBLIC_URL = env("SPARK_PUBLIC_URL")  # no default: links in emails must reach the real site
SPARK_SMS_BACKEND = env("SPARK_SMS_BACKEND")  # a provider's dotted path: codes must really reach phones
if SPARK_SMS_BACKEND in ("console", "locmem"):
    raise ImproperlyConfigured("SPARK_SMS_BACKEND must be a real SMS provider in production.")
SPARK_CONTACT_BACKEND = env("SPARK_CONTACT_BACKEND")  # a masked-number provider's dotted path
if SPARK_CONTACT_BACKEND == "console":
    raise ImproperlyConfigured("SPARK_CONTACT_BACKEND must be a real masked-number provider in production.")

# Offers reach drivers' lock screens only with Web Push: the keys are required, and must be a pair
# (browsers subscribe with the public one; push services refuse what another key signed).
SPARK_VAPID_PRIVATE_KEY = env("SPARK_VAPID_PRIVATE_KEY")
SPARK_VAPID_PUBLIC_KEY = env("SPARK_VAPID_PUBLIC_KEY")
SPARK_VAPID_SUBJECT = env("SPARK_VAPID_SUBJECT")
if not SPARK_VAPID_SUBJECT.startswith(("mailto:", "https://")):
    raise ImproperlyConfigured("SPARK_VAPID_SUBJECT must be a mailto: or https: URL.")
try:
    _vapid_public = vapidkeys.public_key_of(SPARK_VAPID_PRIVATE_KEY)
except ValueError as exc:
    raise ImproperlyConfigured(f"SPARK_VAPID_PRIVATE_KEY is not a P-256 private key: {exc}") from exc
if _vapid_public != SPARK_VAPID_PUBLIC_KEY.strip().rstrip("="):
    raise ImproperlyConfigured("SPARK_VAPID_PUBLIC_KEY does not belong to SPARK_VAPID_PRIVATE_KEY.")

SPARK_ADMIN_MFA_EXEMPT_EMAILS = []
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=587)
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# SPARK_TRUSTED_PROXIES (base.py, default 0) says how many proxies of ours are in front: set it
# to 1 behind one load balancer that appends to X-Forwarded-For, and only if gunicorn cannot be
# reached around it; otherwise clients could choose their own IP for every per-IP rate limit.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
