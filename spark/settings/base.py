"""Settings shared by every environment. Environment-specific files import * from here.

Values come from the environment through django-environ; anything a production deploy
must set (secrets, hosts) has no default in production.py.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

# Runtime state of the embedded default (SQLite file, filesystem broker, uploads) lives here.
VAR_DIR = Path(env("SPARK_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # third party
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "django_htmx",
    "simple_history",
    # ours ("drivers" before "orders" is only the historical order; the layers are
    # accounts <- stores <- drivers <- orders <- payments <- dispatch, see spark/hooks.py)
    "outbox",  # every outgoing message (orders' and payments' emails): below all of them
    "accounts",
    "stores",
    "orders",
    "drivers",
    "payments",
    "dispatch",  # offers, dispatch rounds, the board, the feed, push; fills in spark.hooks
    # surfaces: the ops admin is an app so Django's admin autodiscovery finds ops_admin.admin
    "ops_admin",
    "spark",  # project-wide management commands (seed_demo)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.RetryAfterMiddleware",  # outermost but one: sees every 429
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.RememberLanguageMiddleware",  # after Locale and Authentication
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "accounts.middleware.AdminMFAMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "spark.urls"
WSGI_APPLICATION = "spark.wsgi.application"
ASGI_APPLICATION = "spark.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'spark.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Close the connection at the end of each request. runserver (`make run`) serves every request
# in a new thread, and a connection kept for a later request of that thread is never reused:
# with persistent connections 100 clients exhausted PostgreSQL's 100 connection slots.
# production.py keeps connections (gunicorn's fixed set of workers reuses them).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer fails the request (and /healthz) after this long, instead of
    # waiting as long as TCP does.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default runs web, worker and beat against one SQLite file: wait for locks
    # instead of failing, and take the write lock at BEGIN so two writers never deadlock
    # upgrading read locks.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
# The language choice cookie: no script reads it; production also makes it Secure.
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Chicago"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("SPARK_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("SPARK_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Status changes are guarded UPDATEs audited by the <Entity>Event tables; simple-history's
# revert page would save whole rows back, so it is off.
SIMPLE_HISTORY_REVERT_DISABLED = True

LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"

# --- allauth -------------------------------------------------------------------------
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http"
# After sign-up / login, people with no role go to the driver sign-up wizard (drivers/adapter.py);
# staff, associates and active drivers still land on LOGIN_REDIRECT_URL.
ACCOUNT_ADAPTER = "drivers.adapter.SparkAccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Spark"
# Accounts exempt from the admin MFA requirement. Only local settings may fill this in
# (demo ops account); production.py pins it empty.
SPARK_ADMIN_MFA_EXEMPT_EMAILS: list[str] = []

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="Spark <no-reply@spark.test>")

# --- Client IP behind proxies ----------------------------------------------------------
# How many reverse proxies of ours sit in front of the web server. X-Forwarded-For is believed
# for exactly that many hops and no more (spark.httpkit.client_ip): the client is the Nth entry
# from the right. 0 (the default, and docker-compose.yml's choice since it publishes gunicorn
# directly): the header is ignored and REMOTE_ADDR is the client. Set it too high and anyone
# can pick their own IP for every per-IP rate limit; too low and all clients share the proxy's.
SPARK_TRUSTED_PROXIES = env.int("SPARK_TRUSTED_PROXIES", default=0)
ALLAUTH_TRUSTED_PROXY_COUNT = SPARK_TRUSTED_PROXIES  # allauth's own helper, for anything not using our adapter

# --- DRF / OpenAPI ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "store_api.authentication.StoreApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "spark.api.schema.SparkAutoSchema",
    "EXCEPTION_HANDLER": "spark.api.errors.exception_handler",
    # JSON only, size- and depth-bounded (spark/api/parsers.py); the photo upload of the
    # delivery step names its own multipart parser.
    "DEFAULT_PARSER_CLASSES": ["spark.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # DRF's default (None) takes the whole X-Forwarded-For as the client: a rotating header
    # would dodge every throttle. Our throttles use spark.httpkit.client_ip; this is the same
    # rule for any DRF throttle that does not.
    "NUM_PROXIES": SPARK_TRUSTED_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spark API",
    "DESCRIPTION": "Order intake for stores, and the driver API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "spark.api.schema.forms_have_no_null"],
    # Choice sets that share a field name ("status") get a name of their own instead of a hash.
    "ENUM_NAME_OVERRIDES": {"EarningBatchStatusEnum": "payments.driver_earnings.EARNING_BATCH_STATUSES"},
}

# --- Celery -------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object]
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task reserved by a worker that dies is redelivered after this long. It must stay far
        # above any countdown we use (offer TTLs, slot no-show releases are minutes), otherwise
        # Redis would redeliver a countdown task that is merely waiting.
        "visibility_timeout": 6 * 3600,
    }
else:
    # Embedded default: the kombu filesystem transport, no Redis needed. `sparkfs` is that
    # transport with a quick warm shutdown (spark/celery.py), so Ctrl-C on `make run` puts the
    # countdown tasks the worker holds back into the queue folder instead of losing them.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "sparkfs://localhost//"  # the host is a placeholder; kombu warns without one
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables of fanout (worker remote control, broadcasts); kombu's default is
        # ./control in whatever directory a process was started from.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Look for new messages every 0.1 s instead of every 1 s (a directory listing; cheap).
        "polling_interval": 0.1,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_IMPORTS = ["dispatch.push", "orders.notifications"]  # tasks outside tasks.py modules
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Every deadline lives in the database; these sweepers are the safety net behind each
# countdown task (DESIGN rule 3). Either alone is enough to be correct.
CELERY_BEAT_SCHEDULE = {
    "sweep-expired-offers": {
        "task": "dispatch.tasks.sweep_expired_offers",
        "schedule": timedelta(seconds=15),
    },
    "sweep-dispatch": {
        "task": "dispatch.tasks.sweep_dispatch",
        "schedule": timedelta(seconds=15),
    },
    "sweep-no-shows": {
        "task": "drivers.tasks.sweep_no_shows",
        "schedule": timedelta(seconds=15),
    },
    "sweep-stranded-batches": {
        "task": "orders.tasks.sweep_stranded_batches",
        "schedule": timedelta(minutes=1),  # batches held by a driver who can no longer act on them
    },
    "sweep-due-publications": {
        "task": "orders.tasks.sweep_due_publications",
        "schedule": timedelta(seconds=30),
    },
    "sweep-batching-runs": {
        "task": "orders.tasks.sweep_batching_runs",
        "schedule": timedelta(seconds=60),  # auto-batching runs whose task was lost
    },
    "generate-slots": {
        "task": "stores.tasks.generate_slots",
        "schedule": timedelta(hours=6),  # daily would do; 6 h heals a missed run sooner
    },
    "check-document-expiry": {
        "task": "payments.tasks.check_document_expiry",
        "schedule": timedelta(hours=6),  # daily would do; idempotent, so 6 h heals a missed run sooner
    },
    "send-due-messages": {
        "task": "outbox.tasks.send_due_messages",
        "schedule": timedelta(minutes=1),  # emails not sent after commit, or due for a retry
    },
    "sweep-screening": {
        "task": "payments.tasks.sweep_screening",
        "schedule": timedelta(minutes=5),  # unsent driver notices, missing contractor ids
    },
    # Issue 10, tips slice (payments/tips.py): authorisations whose task was lost, captures and
    # credits of tips whose adjust window closed (or whose capture deadline is near).
    "settle-tips": {
        "task": "payments.tasks.settle_tips",
        "schedule": timedelta(minutes=5),
    },
}
# --- Money: batch settlement (issue 10) ---
# The settle_batch task runs when a batch completes or returns; this sweep settles any whose task
# was lost (completed or returned, a driver, no BatchPay), at most SPARK_SETTLEMENT_SWEEP_LIMIT a run.
SPARK_SETTLEMENT_SWEEP_SECONDS = env.int("SPARK_SETTLEMENT_SWEEP_SECONDS", default=300)
SPARK_SETTLEMENT_SWEEP_LIMIT = env.int("SPARK_SETTLEMENT_SWEEP_LIMIT", default=20_000)
CELERY_BEAT_SCHEDULE["sweep-unsettled-batches"] = {
    "task": "payments.tasks.sweep_unsettled_batches",
    "schedule": timedelta(seconds=SPARK_SETTLEMENT_SWEEP_SECONDS),
}
# Longest countdown any of our tasks may use; checked against visibility_timeout in tests.
SPARK_MAX_TASK_COUNTDOWN_SECONDS = 3600

# --- Spark --------------------------------------------------------------------------
# Payment backend of the contractor module: "stripe" needs STRIPE_SECRET_KEY; "sandbox" is a
# clearly labelled fake for the embedded default and tests. Production refuses the sandbox.
SPARK_PAYMENT_BACKEND = env(
    "SPARK_PAYMENT_BACKEND", default="stripe" if env("STRIPE_SECRET_KEY", default="") else "sandbox"
)
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
# Where the Stripe SDK sends API calls: Stripe's own, or a local stand-in (tests/stripe_standin).
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Screening (payments/contractor/): the shared secret of the provider's signed webhook (unset:
# the webhook answers 503), the FCRA waiting period between the pre-adverse notice and a final
# adverse decision, and who ran the check as the notices must name it (name, address, phone).
SPARK_SCREENING_WEBHOOK_SECRET = env("SPARK_SCREENING_WEBHOOK_SECRET", default="")
SPARK_ADVERSE_WAIT_DAYS = env.int("SPARK_ADVERSE_WAIT_DAYS", default=7)
SPARK_SCREENING_PROVIDER_CONTACT = env(
    "SPARK_SCREENING_PROVIDER_CONTACT", default="Spark Screening Team, screening@spark.test"
)
# Issue 10, tips slice (payments/tips.py): a tip can be raised by the customer (lowered only by
# ops) until this many hours after delivery; then it is captured and credited to the driver.
# It is always captured this many minutes before Stripe's capture_before, whatever the window.
SPARK_TIP_ADJUST_WINDOW_HOURS = env.int("SPARK_TIP_ADJUST_WINDOW_HOURS", default=24)
SPARK_TIP_CAPTURE_MARGIN_MINUTES = env.int("SPARK_TIP_CAPTURE_MARGIN_MINUTES", default=60)
# The most a customer may raise a tip to from the tracking page (cents).
SPARK_TIP_MAX_CENTS = env.int("SPARK_TIP_MAX_CENTS", default=100_000)
SPARK_DEMO_API_KEY = env("SPARK_DEMO_API_KEY", default="demo-store-key")
SPARK_OFFER_TTL_SECONDS = env.int("SPARK_OFFER_TTL_SECONDS", default=60)
# Text messages (phone verification codes, drivers/sms.py): "console" logs them, "locmem" keeps
# them in drivers.sms.outbox (tests), or a dotted path to a send(message) callable of a provider.
SPARK_SMS_BACKEND = env("SPARK_SMS_BACKEND", default="console")
# Masked calls and texts between drivers and customers or stores (orders/contact.py): "console"
# logs the session and lends a fictional stand-in number, or a dotted path to an
# open_session(request) callable of a masked-number provider.
SPARK_CONTACT_BACKEND = env("SPARK_CONTACT_BACKEND", default="console")
# Delivery proof: a delivery farther than this from the customer's coordinates is recorded with
# the distance on the stop's event (never blocked: GPS in a downtown canyon is often off).
SPARK_DELIVERY_MAX_DISTANCE_M = env.int("SPARK_DELIVERY_MAX_DISTANCE_M", default=250)
# API request bodies larger than this are refused with 413 before they are read (spark/api/parsers.py).
# One order's intake is a few KB.
SPARK_API_MAX_BODY_BYTES = env.int("SPARK_API_MAX_BODY_BYTES", default=1024 * 1024)
# Uploaded pictures, one set of limits for every upload (spark.photos, DESIGN rule 9): proof of
# delivery and ID photos, the driver's photo, license and insurance documents (a PDF document
# has the same byte cap). A larger file is refused; so is a picture of more pixels than any
# phone camera's default output (12-48 MP), before it is decoded; what is kept is re-encoded
# at most SPARK_PHOTO_MAX_SIDE_PX on its long side (a license stays legible).
SPARK_PHOTO_MAX_BYTES = env.int("SPARK_PHOTO_MAX_BYTES", default=8 * 1024 * 1024)
SPARK_PHOTO_MAX_PIXELS = env.int("SPARK_PHOTO_MAX_PIXELS", default=50_000_000)
SPARK_PHOTO_MAX_SIDE_PX = env.int("SPARK_PHOTO_MAX_SIDE_PX", default=1600)
# A driver sees a batch's exact customer addresses until this long after it closed (DESIGN rule 6).
SPARK_ADDRESS_VISIBLE_HOURS = env.int("SPARK_ADDRESS_VISIBLE_HOURS", default=24)
# Web push (VAPID) for offers; `manage.py generate_vapid_keys` prints a pair. Unset: no pushes,
# except under local.py (`make run`), which makes a pair once under var/ and keeps it;
# production.py requires all three.
SPARK_VAPID_PRIVATE_KEY = env("SPARK_VAPID_PRIVATE_KEY", default="")  # base64url raw key, or PEM
SPARK_VAPID_PUBLIC_KEY = env("SPARK_VAPID_PUBLIC_KEY", default="")  # applicationServerKey for the browser
SPARK_VAPID_SUBJECT = env("SPARK_VAPID_SUBJECT", default="")  # e.g. mailto:ops@spark.example
# Driver location pings (drivers.location_gate): at most one is stored per driver every
# SPARK_LOCATION_MIN_INTERVAL_SECONDS (quicker ones are answered with the stored position and not
# written), and past SPARK_LOCATION_MAX_PER_MINUTE a minute the API answers 429 with Retry-After.
# The app sends one every 15 s.
SPARK_LOCATION_MIN_INTERVAL_SECONDS = env.int("SPARK_LOCATION_MIN_INTERVAL_SECONDS", default=5)
SPARK_LOCATION_MAX_PER_MINUTE = env.int("SPARK_LOCATION_MAX_PER_MINUTE", default=30)
# Absolute base of links in emails and pages (tracking page, delivery photo, sign-in links).
# Locally it follows SPARK_PORT, the port `make run` serves on; production must set it.
SPARK_PUBLIC_URL = env("SPARK_PUBLIC_URL", default=f"http://127.0.0.1:{env('SPARK_PORT', default='8000')}")

# --- Content-Security-Policy (django-csp) -------------------------------------------
# No inline script, no inline event handler, no eval, on every page: scripts are files in
# static/js, the data they need comes in json_script blocks or data- attributes, and htmx runs
# with allowEval off (templates/base.html). A customer's address that ever ends up parsed as HTML
# cannot run script. Styles likewise come from files only; Leaflet and Swagger UI position
# things through the CSSOM (element.style), which the policy does not restrict.
# Map tiles (dashboard, driver app, tracking page): a Leaflet URL template; the policy lets
# images come from its host.
SPARK_MAP_TILE_URL = env("SPARK_MAP_TILE_URL", default="https://tile.openstreetmap.org/{z}/{x}/{y}.png")


def csp_tile_source(url_template: str) -> str:
    """The CSP source for a Leaflet tile URL template: its scheme and host, Leaflet's {s}
    subdomain placeholder as a wildcard. A relative template is served by us ('self')."""
    parts = urlsplit(url_template.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else SELF


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the SVG icons in Leaflet's and Swagger UI's CSS; blob: for the delivery
        # photo preview the driver app shows before upload.
        "img-src": [SELF, "data:", "blob:", csp_tile_source(SPARK_MAP_TILE_URL)],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    # 4xx answers (a taken batch, a wrong pickup code) are the product working, not warnings;
    # logging each one costs real CPU in a claim storm. 5xx are still logged as errors.
    "loggers": {"django.request": {"level": env("DJANGO_REQUEST_LOG_LEVEL", default="ERROR")}},
}

# --- Money, issue 10: payouts, Stripe webhooks, reconciliation (payments/payouts.py) ---------
# Weekly payouts run in each zone's own time: on this weekday (0 = Monday) from this local hour;
# the beat entry runs hourly and pays every zone whose time has come and that was not paid yet.
SPARK_WEEKLY_PAYOUT_WEEKDAY = env.int("SPARK_WEEKLY_PAYOUT_WEEKDAY", default=0)
SPARK_WEEKLY_PAYOUT_HOUR = env.int("SPARK_WEEKLY_PAYOUT_HOUR", default=6)
# Retries of a payout's transfer (backoff 30 s doubling, up to 30 min) before it fails and the
# money goes back to the driver's balance.
SPARK_PAYOUT_MAX_RETRIES = env.int("SPARK_PAYOUT_MAX_RETRIES", default=6)
# The daily reconciliation compares the last this-many days of Stripe transfers with our payouts.
SPARK_RECONCILE_DAYS = env.int("SPARK_RECONCILE_DAYS", default=35)
CELERY_IMPORTS = [*CELERY_IMPORTS, "payments.payout_tasks"]
CELERY_BEAT_SCHEDULE.update(
    {
        "weekly-payouts": {
            "task": "payments.payout_tasks.run_weekly_payouts",
            "schedule": timedelta(hours=1),  # each zone's local run time comes at a different UTC hour
        },
        "sweep-pending-payouts": {
            "task": "payments.payout_tasks.sweep_pending_payouts",
            "schedule": timedelta(minutes=15),  # payouts whose task was lost or outlived its retries
        },
        "reconcile-daily": {
            "task": "payments.payout_tasks.reconcile_daily",
            "schedule": timedelta(hours=24),
        },
    }
)
# W-9 TINs are encrypted at rest with these Fernet keys (comma-separated; the first encrypts,
# all decrypt, for rotation). Unset: a key derived from SECRET_KEY; set it in production, since a
# new SECRET_KEY would otherwise leave the stored TINs unreadable (drivers would re-enter them).
SPARK_TIN_ENCRYPTION_KEYS = env.list("SPARK_TIN_ENCRYPTION_KEYS", default=[])
# 1099-NEC: the least paid in a tax year that is reported, in cents, per year ("default" for the
# others): $600 through 2025, $2,000 from 2026. JSON, e.g. {"default": 60000, "2026": 200000}.
SPARK_1099_THRESHOLDS_CENTS = env.json("SPARK_1099_THRESHOLDS_CENTS", default={"default": 60000, "2026": 200000})
