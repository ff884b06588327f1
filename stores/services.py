"""Writes for stores. Every state change is a guarded write (DESIGN rule 2)."""

import secrets

from django.db import transaction
from django.utils import timezone

from spark.errors import DomainError
from stores.models import Store, StoreApiKey, hash_api_key

API_KEY_PREFIX = "spk_"
# 32 random bytes = 256 bits of entropy; token_urlsafe gives 43 characters of [A-Za-z0-9_-].
API_KEY_RANDOM_BYTES = 32
_PREFIX_FIELD_LENGTH = StoreApiKey._meta.get_field("prefix").max_length or 12
_NAME_FIELD_LENGTH = StoreApiKey._meta.get_field("name").max_length or 80


def generate_api_key() -> str:
    """A new raw key: `spk_` + 43 url-safe characters. Shown once, never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_RANDOM_BYTES)


@transaction.atomic
def store_api_key_create(*, store: Store, name: str, created_by=None) -> tuple[StoreApiKey, str]:
    """Create an integration key for `store`. Returns the row and the raw key.

    Only the SHA-256 of the key and its first characters (to tell keys apart in lists) are
    stored, so the raw key must be handed to the store now: it cannot be shown again. A store
    may hold several active keys (rotation: create the new one, switch, revoke the old one).
    """
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the key a name, e.g. the system that will use it.", fields={"name": ["Required."]})
    if len(name) > _NAME_FIELD_LENGTH:
        raise DomainError(
            f"The key name is longer than {_NAME_FIELD_LENGTH} characters.",
            fields={"name": [f"At most {_NAME_FIELD_LENGTH} characters."]},
        )
    store = Store.objects.select_for_update().get(pk=store.pk)
    if not store.is_active:
        raise DomainError(f"Store #{store.number} is not active; it cannot get an API key.", code="store_inactive")
    raw = generate_api_key()
    key = StoreApiKey.objects.create(
        store=store,
        name=name,
        prefix=raw[:_PREFIX_FIELD_LENGTH],
        key_hash=hash_api_key(raw),
        created_by=created_by,
    )
    return key, raw


def store_api_key_revoke(*, key: StoreApiKey) -> StoreApiKey:
    """Revoke `key` from now on. Idempotent: revoking a revoked key changes nothing and
    keeps the first revocation time."""
    StoreApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return key
