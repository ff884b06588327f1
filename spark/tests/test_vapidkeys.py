"""Web Push works out of the box under `make run`: with no VAPID keys configured, local settings
make a pair once under var/ and read the same pair on every later start; configured keys win."""

import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dispatch.push import vapid_configured
from spark import vapidkeys
from spark.tests.helpers import _run

KEY_FILE = "vapid-private-key.pem"
SHOW_VAPID = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.SPARK_VAPID_PRIVATE_KEY, s.SPARK_VAPID_PUBLIC_KEY, s.SPARK_VAPID_SUBJECT]))"
)


def _local_settings(var_dir, **env) -> list[str]:
    proc = _run(
        ["-c", SHOW_VAPID],
        {"DJANGO_SETTINGS_MODULE": "spark.settings.local", "SPARK_VAR_DIR": str(var_dir), **env},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_make_run_makes_a_pair_once_and_keeps_it(tmp_path, settings, db):
    # given a fresh var/ and no VAPID keys in the environment
    # when the local settings load (make run: seed, then web, worker and beat)
    first = _local_settings(tmp_path)
    # then a pair is written under var/, readable by its owner only
    key_file = tmp_path / KEY_FILE
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # and a later start reads the same pair (browsers stay subscribed)
    assert _local_settings(tmp_path) == first
    # and it is a working pair: dispatch signs pushes with it
    settings.SPARK_VAPID_PRIVATE_KEY, settings.SPARK_VAPID_PUBLIC_KEY, settings.SPARK_VAPID_SUBJECT = first
    assert first[2].startswith("mailto:")
    assert vapid_configured() is True


def test_configured_keys_win_and_nothing_is_written(tmp_path):
    pair = vapidkeys.new_pair()
    values = _local_settings(
        tmp_path,
        SPARK_VAPID_PRIVATE_KEY=pair.private_key,
        SPARK_VAPID_PUBLIC_KEY=pair.public_key,
        SPARK_VAPID_SUBJECT="mailto:ops@example.com",
    )
    assert values == [pair.private_key, pair.public_key, "mailto:ops@example.com"]
    assert not (tmp_path / KEY_FILE).exists()


def test_kept_pair_reuses_a_file_another_process_wrote(tmp_path):
    # given the key another process (web, worker or beat) linked into place first
    theirs = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / KEY_FILE
    path.write_text(
        theirs.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )
    # when this one starts, it reads that pair and never replaces it
    pair = vapidkeys.kept_pair(path)
    assert pair.public_key == vapidkeys.public_key_of(path.read_text())
    assert vapidkeys.kept_pair(path) == pair
    # and no temporary file is left beside it
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_a_damaged_key_file_says_what_to_do(tmp_path):
    path = tmp_path / KEY_FILE
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="delete it and a new pair is made"):
        vapidkeys.kept_pair(path)


@pytest.mark.parametrize("pem", [False, True])
def test_new_pair_public_key_belongs_to_the_private_key(pem):
    pair = vapidkeys.new_pair(pem=pem)
    assert vapidkeys.public_key_of(pair.private_key) == pair.public_key
    assert vapidkeys.public_key_of(vapidkeys.new_pair(pem=pem).private_key) != pair.public_key


def test_a_key_on_another_curve_is_refused():
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="P-256"):
        vapidkeys.public_key_of(pem.decode())
