"""Plain helpers (builders, constants) shared by this folder's test modules; fixtures live in conftest.py."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


VALID_ENV = {
    "DJANGO_SETTINGS_MODULE": "spark.settings.production",
    "DJANGO_SECRET_KEY": "p9Xr-2vLq8Zt_Wm4Nc7Hb1Ks6Jd3Gf0Ya5Ue8Ro2Ti9Pw4Qs7Lx1Mz6Vn3Bk0Cj",
    "DJANGO_ALLOWED_HOSTS": "spark.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/spark",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "SPARK_SCREENING_WEBHOOK_SECRET": "screening-secret-x",
    "SPARK_SMS_BACKEND": "spark.tests.fake_sms.send",
    "SPARK_VAPID_PRIVATE_KEY": "fRD2Sq2L3HMjnoWQnJf6vWjsh0B2ir9tQ2G4V1ATnwQ",
    "SPARK_VAPID_PUBLIC_KEY": "BA1Zy_vUMMwEi2DxJ3GGvOfKvRK5wmsderxNK_J8oLo4oV-KqfENw2kh3l9LYT17xWQ6UQBg1V4kKXTqyzuFru8",
    "SPARK_VAPID_SUBJECT": "mailto:ops@spark.example.com",
    "SPARK_PUBLIC_URL": "https://spark.example.com",
    "SPARK_CONTACT_BACKEND": "spark.tests.fake_proxy.open_session",
}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env(**changes: str | None) -> dict[str, str]:
    env = {**VALID_ENV, **changes}
    return {k: v for k, v in env.items() if v is not None}
