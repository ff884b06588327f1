"""Production settings refuse to start on an unsafe or incomplete environment.

Each case imports spark.settings.production in a fresh interpreter with a controlled
environment (nothing inherited but PATH), so the test sees exactly what a deploy would.
"""

import pytest

from spark.tests.helpers import _env, _run

# The public key of another pair than the one in VALID_ENV.
ANOTHER_VAPID_PUBLIC_KEY = "BPjTzOZmOzMXW5HFMo0M9OKwxf8r5lHqt58SoE4KGj1xmXGWNgUv9Yd9Dr4pBOIuH7RhRVUvUT2xDeXgr-5_mWI"
LOAD_SETTINGS = "from django.conf import settings; settings.INSTALLED_APPS; print('loaded')"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY", id="secret-missing"),
        pytest.param({"DJANGO_SECRET_KEY": "short"}, "at least 50 characters", id="secret-short"),
        pytest.param({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must not be on", id="debug-on"),
        pytest.param({"SPARK_PAYMENT_BACKEND": "sandbox"}, "sandbox payment backend is refused", id="sandbox"),
        pytest.param({"DATABASE_URL": "sqlite:////tmp/spark.sqlite3"}, "DATABASE_URL must be postgres", id="sqlite"),
        pytest.param({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS", id="hosts-missing"),
        pytest.param({"REDIS_URL": None}, "REDIS_URL", id="redis-missing"),
        pytest.param({"STRIPE_SECRET_KEY": None}, "STRIPE_SECRET_KEY", id="stripe-key-missing"),
        pytest.param({"STRIPE_WEBHOOK_SECRET": None}, "STRIPE_WEBHOOK_SECRET", id="webhook-secret-missing"),
        pytest.param(
            {"SPARK_SCREENING_WEBHOOK_SECRET": None}, "SPARK_SCREENING_WEBHOOK_SECRET", id="screening-secret-missing"
        ),
        pytest.param({"SPARK_SMS_BACKEND": "console"}, "real SMS provider", id="sms-console"),
        pytest.param({"SPARK_VAPID_PRIVATE_KEY": None}, "SPARK_VAPID_PRIVATE_KEY", id="vapid-private-missing"),
        pytest.param({"SPARK_VAPID_PUBLIC_KEY": None}, "SPARK_VAPID_PUBLIC_KEY", id="vapid-public-missing"),
        pytest.param({"SPARK_VAPID_SUBJECT": None}, "SPARK_VAPID_SUBJECT", id="vapid-subject-missing"),
        pytest.param({"SPARK_VAPID_SUBJECT": "ops@spark.example.com"}, "mailto: or https:", id="vapid-subject-bare"),
        pytest.param({"SPARK_VAPID_PRIVATE_KEY": "not-a-key"}, "not a P-256 private key", id="vapid-private-bad"),
        pytest.param(
            {"SPARK_VAPID_PUBLIC_KEY": ANOTHER_VAPID_PUBLIC_KEY},
            "does not belong",
            id="vapid-pair-mismatch",
        ),
        pytest.param({"SPARK_PUBLIC_URL": None}, "SPARK_PUBLIC_URL", id="public-url-missing"),
        pytest.param({"SPARK_CONTACT_BACKEND": None}, "SPARK_CONTACT_BACKEND", id="contact-missing"),
        pytest.param({"SPARK_CONTACT_BACKEND": "console"}, "real masked-number provider", id="contact-console"),
    ],
)
def test_production_refuses_to_start(changes, message):
    # given a production environment with one thing wrong
    # when the settings are loaded
    proc = _run(["-c", LOAD_SETTINGS], _env(**changes))
    # then start-up stops with a clear ImproperlyConfigured naming the problem
    assert proc.returncode != 0, proc.stdout
    assert "ImproperlyConfigured" in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("changes", "url"), [({}, "http://127.0.0.1:8000"), ({"SPARK_PORT": "8123"}, "http://127.0.0.1:8123")]
)
def test_make_runs_links_follow_the_port_it_serves_on(changes, url):
    # `SPARK_PORT=8123 make run` serves on 8123: emails must link there, not to 8000.
    code = "from django.conf import settings; print(settings.SPARK_PUBLIC_URL)"
    env = _env(DJANGO_SETTINGS_MODULE="spark.settings.local", SPARK_PUBLIC_URL=None, DATABASE_URL=None, **changes)
    proc = _run(["-c", code], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == url


def test_production_loads_with_a_valid_environment():
    proc = _run(["-c", LOAD_SETTINGS], _env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded" in proc.stdout


def test_deploy_check_has_no_warnings():
    # given a complete production environment
    # when Django's deployment checklist runs, failing on any warning
    proc = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _env())
    output = proc.stdout + proc.stderr
    # then it passes with nothing to say
    assert proc.returncode == 0, output[-4000:]
    assert "System check identified no issues" in output, output[-4000:]
    assert "WARNINGS" not in output


SHOW_PROXY_AND_COOKIES = (
    "from django.conf import settings as s; "
    "print(s.SPARK_TRUSTED_PROXIES, s.ALLAUTH_TRUSTED_PROXY_COUNT, s.REST_FRAMEWORK['NUM_PROXIES'], "
    "s.LANGUAGE_COOKIE_SECURE, s.LANGUAGE_COOKIE_HTTPONLY, s.LANGUAGE_COOKIE_SAMESITE)"
)


@pytest.mark.parametrize(
    ("changes", "proxies"),
    [
        pytest.param({}, "0 0 0", id="default-trusts-no-proxy"),
        pytest.param({"SPARK_TRUSTED_PROXIES": "1"}, "1 1 1", id="one-load-balancer"),
    ],
)
def test_production_trusts_forwarded_for_only_as_told_and_the_language_cookie_is_secure(changes, proxies):
    # given a production environment (gunicorn published directly unless SPARK_TRUSTED_PROXIES says)
    proc = _run(["-c", SHOW_PROXY_AND_COOKIES], _env(**changes))
    assert proc.returncode == 0, proc.stderr[-2000:]
    # then allauth's limits, DRF's throttles and ours all trust the same number of proxies
    # and the language cookie goes over https only, out of scripts' reach
    assert proc.stdout.split() == [*proxies.split(), "True", "True", "Lax"]
