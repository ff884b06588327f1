"""Reads of drivers: why this driver may not work now (if they may not), their slots."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from stores.models import DeliverySlot, Zone

from .models import Driver, SlotClaim

# Slot holders get offers, and may check in, from this long before their slot starts.
SLOT_EARLY_MINUTES = 30


def zone_today(zone: Zone, now: datetime) -> tuple[datetime, date]:
    """(start of the zone's local day, the local date) at `now`."""
    local = now.astimezone(ZoneInfo(zone.timezone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, local.date()


def driver_work_refusal(driver: Driver) -> str | None:
    """None if the driver may take work now; otherwise the reason, in words they can act on."""
    if driver.status != Driver.Status.ACTIVE:
        if driver.status in (Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED):
            labels = dict(Driver.ReasonCode.choices)
            why = labels.get(driver.reason_code) if driver.reason_code else None
            why = why or driver.reason_code or "no reason recorded"
            return f"Your account is {driver.status}: {why}."
        return f"Your application is not approved yet ({driver.status}); you can take work once screening is complete."
    today = timezone.localdate(timezone.now(), ZoneInfo(driver.home_zone.timezone))
    for label, expires in (("driver's license", driver.license_expires_on), ("insurance", driver.insurance_expires_on)):
        if expires is None:
            return f"We have no {label} on file; add it in the app to take work."
        if expires < today:
            return f"Your {label} expired on {expires:%b %d, %Y}; upload the renewed one to take work again."
    return None


def eligible_q(today, prefix: str = "") -> Q:
    """driver_work_refusal as a filter, the drivers it refuses nothing: active, license and
    insurance valid today."""
    return Q(
        **{
            f"{prefix}status": Driver.Status.ACTIVE,
            f"{prefix}license_expires_on__gte": today,
            f"{prefix}insurance_expires_on__gte": today,
        }
    )


def upcoming_slots_for(driver: Driver, *, now: datetime, days: int = 14) -> list[DeliverySlot]:
    """Slots at the stores of the driver's zone for the next `days`: those not started yet,
    and those under way that the driver holds (to check in). Each carries `my_claim` (the
    driver's live claim or None); `seats_free` is on the model."""
    slots = list(
        DeliverySlot.objects.filter(
            store__zone_id=driver.home_zone_id,
            store__is_active=True,
            ends_at__gt=now,
            starts_at__lt=now + timedelta(days=days),
        )
        .select_related("store")
        .order_by("starts_at", "store__number")[:500]
    )
    mine = {
        c.slot_id: c
        for c in SlotClaim.objects.filter(
            driver=driver, slot_id__in=[s.pk for s in slots], status__in=SlotClaim.ACTIVE_STATUSES
        )
    }
    shown = []
    for slot in slots:
        claim = mine.get(slot.pk)
        slot.my_claim = claim  # type: ignore[attr-defined]
        if slot.starts_at > now or claim:
            shown.append(slot)
    return shown


def slot_release_reason(claim: SlotClaim) -> str:
    """Why a seat was released, as the driver is told it (email and home screen). The deadline
    is the zone's grace after the start, or after signing up for a slot already running."""
    grace = claim.slot.store.zone.no_show_grace_minutes
    if claim.release_at - timedelta(minutes=grace) > claim.slot.starts_at:
        return _("Released: you had not checked in %(m)s minutes after you signed up.") % {"m": grace}
    return _("Released: you had not checked in %(m)s minutes after the slot started.") % {"m": grace}


# A released seat stays on the driver's home screen this long after its slot ended.
RELEASED_SHOWN_FOR = timedelta(hours=12)


def released_slot_claims_for(driver: Driver, *, now: datetime) -> list[SlotClaim]:
    """The driver's seats released as no-shows in slots that ended less than
    RELEASED_SHOWN_FOR ago (or are still running), newest slot first."""
    return list(
        SlotClaim.objects.filter(
            driver=driver, status=SlotClaim.Status.RELEASED, slot__ends_at__gt=now - RELEASED_SHOWN_FOR
        )
        .select_related("slot__store__zone")
        .order_by("-slot__starts_at")[:10]
    )


def slot_claims_awaiting_check_in(*, store_id: int, now: datetime) -> list[SlotClaim]:
    """Seats at the store whose check-in is open and not done yet (the store desk offers
    "Confirm driver is here" for each), earliest deadline first."""
    return list(
        SlotClaim.objects.filter(
            slot__store_id=store_id,
            status=SlotClaim.Status.CLAIMED,
            slot__starts_at__lte=now + timedelta(minutes=SLOT_EARLY_MINUTES),
            release_at__gt=now,
        )
        .select_related("driver__user", "slot")
        .order_by("release_at", "pk")
    )
