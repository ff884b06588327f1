"""VAPID key pairs for Web Push: made with `cryptography`, written as text the settings and
pywebpush read.

- `new_pair()`: a fresh P-256 pair, the private key as base64url of its raw 32 bytes (or PKCS8
  PEM) and the public key as base64url of the uncompressed point (the browser's
  applicationServerKey). `manage.py generate_vapid_keys` prints one.
- `public_key_of(private)`: the public key that belongs to a private key in either form.
- `kept_pair(path)`: the embedded default's pair (`make run`, spark/settings/local.py): made once
  into `path` (a PEM file under var/, owner-only) and read back on every later start, so
  browsers stay subscribed across restarts. Web, worker and beat start at the same moment: the
  first to link its file into place wins and the others read that one.

Imported by the settings before Django is set up: no Django here.
"""

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class VapidPair:
    private_key: str
    public_key: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_text(key: ec.EllipticCurvePrivateKey) -> str:
    return _b64url(
        key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _load_private(text: str) -> ec.EllipticCurvePrivateKey:
    """What pywebpush accepts: PEM (PKCS8 or SEC1, "\\n" escapes from a one-line env var are
    fine), or base64url of the raw 32-byte key or of the DER key. ValueError when it is none
    of them or not a P-256 key."""
    pem = text.replace("\\n", "\n").strip()
    if "-----BEGIN" in pem:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    else:
        raw = base64.urlsafe_b64decode(pem + "=" * (-len(pem) % 4))
        if len(raw) == 32:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(raw, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("a VAPID key is a P-256 (prime256v1) key")
    return key


def public_key_of(private_key: str) -> str:
    """ValueError when `private_key` is not a P-256 private key in a form pywebpush reads."""
    try:
        return _public_text(_load_private(private_key))
    except (TypeError, UnsupportedAlgorithm) as exc:  # an encrypted PEM, an unknown key type
        raise ValueError(str(exc)) from exc


def new_pair(*, pem: bool = False) -> VapidPair:
    key = ec.generate_private_key(ec.SECP256R1())
    private = _pem(key) if pem else _b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    return VapidPair(private_key=private, public_key=_public_text(key))


def kept_pair(path: Path) -> VapidPair:
    """The pair kept in `path`, made there first if there is none."""
    if not path.exists():
        _write_once(path, _pem(ec.generate_private_key(ec.SECP256R1())))
    text = path.read_text(encoding="ascii")
    try:
        public = public_key_of(text)
    except ValueError as exc:
        raise ValueError(f"{path} holds no VAPID private key; delete it and a new pair is made") from exc
    return VapidPair(private_key=text, public_key=public)


def _write_once(path: Path, text: str) -> None:
    """Write `text` to `path` unless another process got there first (then theirs stays): the
    file is written whole under a temporary name, then hard-linked into place, which fails if
    the name is taken. Readable by the owner only: it is a signing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
