"""The production shape: docker-compose.yml must stay valid (there is no Docker engine here,
so the file is validated, not run)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def compose():
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing; .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install -y docker-compose)")
    return exe


@pytest.mark.parametrize("with_env", [False, True], ids=["clean-checkout", "with-.env"])
def test_compose_config_is_valid(compose, tmp_path, with_env):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    if with_env:
        shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SPARK_", "DATABASE_", "REDIS_"))}
    result = subprocess.run([compose, "config", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_production_services_and_one_beat(compose, tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    out = subprocess.run([compose, "config", "--services"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(out.stdout.split())
    full = subprocess.run([compose, "config"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "appendonly" in full and "gunicorn" in full
    assert "DJANGO_SETTINGS_MODULE: spark.settings.production" in full


def test_compose_web_trusts_no_forwarded_for_by_default(compose, tmp_path):
    # gunicorn's port is published directly: anyone can send X-Forwarded-For, so no hop is
    # trusted unless .env says a proxy of ours sits in front (SPARK_TRUSTED_PROXIES).
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SPARK_", "DATABASE_", "REDIS_"))}
    full = subprocess.run([compose, "config"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    web = full.stdout.split("\n  web:")[1].split("\n  worker:")[0]
    assert "SPARK_TRUSTED_PROXIES: '0'" in web or 'SPARK_TRUSTED_PROXIES: "0"' in web, web
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    full = subprocess.run([compose, "config"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    web = full.stdout.split("\n  web:")[1].split("\n  worker:")[0]
    assert "SPARK_TRUSTED_PROXIES: '0'" in web or 'SPARK_TRUSTED_PROXIES: "0"' in web, web
