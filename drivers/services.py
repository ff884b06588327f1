"""Every write to drivers goes through here."""

from spark.errors import DomainError
from spark.statemachine import TransitionResult, transition

from .models import Driver, DriverEvent


def driver_set_status(
    *, driver: Driver, to: str, actor=None, reason_code: str = "", note: str = ""
) -> TransitionResult:
    """Move a driver through applicant -> screening -> active -> suspended -> deactivated.

    Suspension and deactivation carry a reason code the driver sees; going back to active
    clears it. Going off-active also takes the driver offline (a CHECK requires it).
    """
    updates: dict = {}
    if to in (Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED):
        if not reason_code or reason_code not in Driver.ReasonCode.values:
            raise DomainError(
                "A suspension or deactivation needs one of the reason codes.", code="reason_required",
                fields={"reason_code": [f"One of: {', '.join(v for v in Driver.ReasonCode.values if v)}"]},
            )
        updates.update(reason_code=reason_code, reason_note=note, is_online=False, online_since=None)
    elif to == Driver.Status.ACTIVE:
        updates.update(reason_code="", reason_note="")
    return transition(
        driver,
        to=to,
        allowed=Driver.TRANSITIONS,
        event_model=DriverEvent,
        event_fk="driver",
        actor=actor,
        reason=note or reason_code,
        updates=updates,
        event_fields={"reason_code": reason_code},
    )
