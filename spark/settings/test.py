"""Tests run on real PostgreSQL and Redis; there is no SQLite fallback."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-only-secret-key-not-for-anything-else-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["*"]
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/spark")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
# Unit tests run tasks in-process unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SPARK_PAYMENT_BACKEND = "sandbox"
SPARK_SMS_BACKEND = "locmem"
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Test-only: hold settlement at a point ("computed" or "posted", then ":<seconds>") so a test can
# SIGKILL the worker there (payments.settlement.pause_for_tests). Empty: no pause.
SPARK_SETTLEMENT_TEST_PAUSE = env("SPARK_SETTLEMENT_TEST_PAUSE", default="")
