"""A suspended or deactivated driver's appeal, submitted from the driver app's Standing page.

Ops read the appeal in the admin (Driver.appeal_text / appeal_submitted_at) and decide it
with drivers.services.driver_set_status. An appeal is "pending" while it was submitted after
the current suspension began (appeal_submitted_at >= status_changed_at): a driver who was
reinstated and later suspended again may appeal again, but one suspension gets one appeal.
"""

from django.db.models import F, Q
from django.utils import timezone

from spark.errors import Conflict, DomainError

from .models import Driver, DriverEvent

APPEAL_MAX_CHARS = 2000
APPEAL_MIN_CHARS = 20
APPEALABLE = (Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED)


def appeal_pending(driver: Driver) -> bool:
    """Whether the driver already appealed the suspension they are under now."""
    return bool(
        driver.status in APPEALABLE
        and driver.appeal_submitted_at is not None
        and driver.appeal_submitted_at >= driver.status_changed_at
    )


def driver_appeal_submit(*, driver: Driver, text: str) -> Driver:
    """Record the driver's appeal of their suspension or deactivation.

    One guarded UPDATE: it matches only while the driver is suspended or deactivated and has
    no appeal for this suspension yet, so a double tap or two phones record one appeal and
    the second gets a clear 409. Writes a DriverEvent (status unchanged) for the audit trail.
    """
    text = (text or "").strip()
    if len(text) < APPEAL_MIN_CHARS:
        raise DomainError(
            f"Tell us in a few words (at least {APPEAL_MIN_CHARS} characters) why the decision should change.",
            code="appeal_too_short",
            fields={"text": [f"At least {APPEAL_MIN_CHARS} characters."]},
        )
    if len(text) > APPEAL_MAX_CHARS:
        raise DomainError(
            f"Keep the appeal under {APPEAL_MAX_CHARS} characters.",
            code="appeal_too_long",
            fields={"text": [f"At most {APPEAL_MAX_CHARS} characters."]},
        )
    now = timezone.now()
    no_appeal_yet = Q(appeal_submitted_at__isnull=True) | Q(appeal_submitted_at__lt=F("status_changed_at"))
    rows = (
        Driver.objects.filter(pk=driver.pk, status__in=APPEALABLE)
        .filter(no_appeal_yet)
        .update(appeal_text=text, appeal_submitted_at=now)
    )
    driver.refresh_from_db(fields=["status", "status_changed_at", "appeal_text", "appeal_submitted_at"])
    if not rows:
        if driver.status not in APPEALABLE:
            raise DomainError("Your account is not suspended; there is nothing to appeal.", code="not_appealable")
        raise Conflict("You already appealed this decision; ops will get back to you.", code="appeal_pending")
    DriverEvent.objects.create(
        driver=driver,
        from_status=driver.status,
        to_status=driver.status,
        actor=driver.user,
        reason="appeal submitted",
        reason_code=driver.reason_code,
    )
    return driver
