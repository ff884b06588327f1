"""Writes for stores. Every state change is a guarded write (DESIGN rule 2)."""

import secrets
import zoneinfo
from datetime import date, datetime, timedelta
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from spark import hooks
from spark.errors import DomainError
from stores.models import DeliverySlot, SlotTemplate, Store, StoreApiKey, StoreMembership, hash_api_key

API_KEY_PREFIX = "spk_"
# 32 random bytes = 256 bits of entropy; token_urlsafe gives 43 characters of [A-Za-z0-9_-].
API_KEY_RANDOM_BYTES = 32
_PREFIX_FIELD_LENGTH = StoreApiKey._meta.get_field("prefix").max_length or 12
_NAME_FIELD_LENGTH = StoreApiKey._meta.get_field("name").max_length or 80


def generate_api_key() -> str:
    """A new raw key: `spk_` + 43 url-safe characters. Shown once, never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_RANDOM_BYTES)


class NewApiKey(NamedTuple):
    """A key just created: its row, and the raw key to hand over (never stored, never shown again)."""

    key: StoreApiKey
    raw: str


@transaction.atomic
def store_api_key_create(*, store: Store, name: str, created_by=None) -> NewApiKey:
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
    return NewApiKey(key=key, raw=raw)


def store_api_key_revoke(*, key: StoreApiKey) -> StoreApiKey:
    """Revoke `key` from now on. Idempotent: revoking a revoked key changes nothing and
    keeps the first revocation time."""
    StoreApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return key


# --- Delivery slots -----------------------------------------------------------------

SLOT_HORIZON_DAYS = 14


def _template_fields(*, weekdays: str, start_time, end_time, capacity: int) -> dict:
    """A template's fields, checked (the same rules for a new template and an edited one)."""
    days = "".join(sorted(set(weekdays)))
    if not days or any(d not in "0123456" for d in days):
        raise DomainError("Pick at least one day of the week.", fields={"weekdays": ["Pick at least one day."]})
    if end_time <= start_time:
        raise DomainError("A slot must end after it starts (same day).", fields={"end_time": ["After the start."]})
    if not 1 <= capacity <= 200:
        raise DomainError("Seats must be between 1 and 200.", fields={"capacity": ["Between 1 and 200."]})
    return {"weekdays": days, "start_time": start_time, "end_time": end_time, "capacity": capacity}


def slot_template_create(*, store: Store, weekdays: str, start_time, end_time, capacity: int) -> SlotTemplate:
    """A recurring block; its slots for the next 14 days are created right away."""
    fields = _template_fields(weekdays=weekdays, start_time=start_time, end_time=end_time, capacity=capacity)
    template = SlotTemplate.objects.create(store=store, **fields)
    slots_generate(store_ids=[store.pk])
    return template


def slot_template_update(*, template: SlotTemplate, weekdays: str, start_time, end_time, capacity: int) -> SlotTemplate:
    """Change a template. Its open slots that no driver signed up for are replaced by slots at
    the new days and times; a slot holding a driver's seat stays as it is (they count on it)."""
    fields = _template_fields(weekdays=weekdays, start_time=start_time, end_time=end_time, capacity=capacity)
    with transaction.atomic():
        _drop_empty_future_slots(template)
        SlotTemplate.objects.filter(pk=template.pk).update(**fields)
        template.refresh_from_db()
        slots_generate(store_ids=[template.store_id])
    return template


def slot_template_delete(*, template: SlotTemplate) -> int:
    """Delete a template and its open slots that no driver signed up for; a slot holding a
    driver's seat stays. Returns how many slots went. Deleting it twice changes nothing."""
    with transaction.atomic():
        dropped = _drop_empty_future_slots(template)
        SlotTemplate.objects.filter(pk=template.pk).delete()
    return dropped


def _drop_empty_future_slots(template: SlotTemplate) -> int:
    """Delete the slots `template` made that have not started and hold no seat (no claim ever,
    so no driver's history points at them), unless another active template of the store makes
    the same block. The rows are locked first: a driver signing up at that moment waits for
    this transaction, then finds the slot gone."""
    tz = zoneinfo.ZoneInfo(Store.objects.select_related("zone").get(pk=template.store_id).zone.timezone)
    others = list(SlotTemplate.objects.filter(store_id=template.store_id, is_active=True).exclude(pk=template.pk))

    def makes(t: SlotTemplate, slot: DeliverySlot) -> bool:
        start, end = slot.starts_at.astimezone(tz), slot.ends_at.astimezone(tz)
        return (start.time(), end.time()) == (t.start_time, t.end_time) and str(start.weekday()) in t.weekdays

    slots = (
        DeliverySlot.objects.select_for_update(of=("self",))
        .filter(store_id=template.store_id, starts_at__gt=timezone.now(), claimed=0, claims__isnull=True)
        .order_by("pk")
    )
    doomed = [s.pk for s in slots if makes(template, s) and not any(makes(o, s) for o in others)]
    DeliverySlot.objects.filter(pk__in=doomed, claimed=0).delete()
    return len(doomed)


def slot_template_set_active(*, template: SlotTemplate, active: bool) -> SlotTemplate:
    """Pause or resume a template. Slots already created (and drivers' seats in them) stay."""
    SlotTemplate.objects.filter(pk=template.pk).update(is_active=active)
    template.refresh_from_db()
    return template


def slots_generate(*, today: date | None = None, days: int = SLOT_HORIZON_DAYS, store_ids=None) -> int:
    """Create the DeliverySlots of every active template for `days` days from today (in each
    store's own time zone, so a 10:00 slot stays 10:00 across DST). Idempotent: the unique
    (store, starts_at, ends_at) index skips slots that exist. Returns how many were created."""
    templates = SlotTemplate.objects.filter(is_active=True, store__is_active=True).select_related("store__zone")
    if store_ids is not None:
        templates = templates.filter(store_id__in=store_ids)
    rows = []
    for t in templates:
        tz = zoneinfo.ZoneInfo(t.store.zone.timezone)
        first = today or timezone.localdate(timezone=tz)
        for offset in range(days):
            day = first + timedelta(days=offset)
            if str(day.weekday()) not in t.weekdays:
                continue
            rows.append(
                DeliverySlot(
                    store=t.store,
                    capacity=t.capacity,
                    starts_at=datetime.combine(day, t.start_time, tzinfo=tz),
                    ends_at=datetime.combine(day, t.end_time, tzinfo=tz),
                )
            )
    before = DeliverySlot.objects.count()
    DeliverySlot.objects.bulk_create(rows, ignore_conflicts=True)
    return DeliverySlot.objects.count() - before


# --- Memberships --------------------------------------------------------------------


def membership_add(*, store: Store, email: str, role: str) -> StoreMembership:
    """Give an existing Spark account access to the store's dashboard.

    The person signs up first (with email verification); a manager cannot create accounts
    for others, so nobody gets a password they did not choose.
    """
    from accounts.models import User

    if role not in StoreMembership.Role.values:
        raise DomainError("Pick a role.", fields={"role": ["Associate or manager."]})
    user = User.objects.filter(email__iexact=(email or "").strip()).first()
    if user is None:
        raise DomainError(
            "No Spark account uses that email. Ask them to sign up first, then add them.",
            code="no_such_user",
            fields={"email": ["No account with this email."]},
        )
    if hooks.user_is_driver(user_id=user.pk):
        raise DomainError(
            _(
                "%(email)s is a driver's account, and a driver cannot be store staff. "
                "Ask them to sign up with another email for the store."
            )
            % {"email": user.email},
            code="driver_account",
            fields={"email": [_("This is a driver's account.")]},
        )
    membership, created = StoreMembership.objects.get_or_create(user=user, store=store, defaults={"role": role})
    if not created and membership.role != role:
        raise DomainError(
            f"{user.email} is already a {membership.get_role_display().lower()} here.", code="already_member"
        )
    return membership


def membership_remove(*, membership: StoreMembership) -> None:
    """Remove access. The last manager of a store cannot be removed (someone must manage it)."""
    with transaction.atomic():
        managers = StoreMembership.objects.select_for_update().filter(
            store_id=membership.store_id, role=StoreMembership.Role.MANAGER
        )
        if membership.role == StoreMembership.Role.MANAGER and len(list(managers)) <= 1:
            raise DomainError("A store keeps at least one manager; add another manager first.", code="last_manager")
        StoreMembership.objects.filter(pk=membership.pk).delete()
