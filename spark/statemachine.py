"""One code path for every status change.

A model with a `status` field declares its allowed transitions as a dict
{from_status: {to_status, ...}}; `transition()` checks the map, does a guarded update
(`filter(pk=..., status=current).update(...)`), and writes an event row in the same
transaction. Asking for the status the object already has is a no-op, so a retried call
changes nothing and writes no second event.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from .errors import Conflict, InvalidTransition


class StatusEvent(models.Model):
    """Base of every <Entity>Event table: who changed what, when, where and why."""

    from_status = models.CharField(max_length=32)
    to_status = models.CharField(max_length=32)
    actor = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=255, blank=True)
    lat = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    lng = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"


@dataclass(frozen=True)
class TransitionResult:
    changed: bool
    from_status: str
    to_status: str


def transition(
    instance: models.Model,
    *,
    to: str,
    allowed: Mapping[Any, Collection[Any]],
    event_model: type[StatusEvent],
    event_fk: str,
    actor=None,
    reason: str = "",
    lat=None,
    lng=None,
    updates: dict[str, Any] | None = None,
    extra_filter: dict[str, Any] | None = None,
    event_fields: dict[str, Any] | None = None,
    current: str | None = None,
    savepoint: bool = True,
) -> TransitionResult:
    """Move `instance` to status `to` if the map allows it; refresh `instance` afterwards.

    `updates` are other columns written in the same UPDATE (timestamps, driver...).
    `extra_filter` adds conditions to the guard, e.g. `expires_at__gt=Now()`.
    `event_fields` are extra columns of the event row (e.g. a reason code).
    `current` is the status the caller has just read in this request (saves reading it again;
    the guarded UPDATE still decides: a stale `current` matches no row and ends as a no-op or
    a Conflict, exactly as a concurrent writer would).
    `savepoint=False` is for callers whose whole transaction is abandoned on any error anyway
    (e.g. a board claim): it saves the SAVEPOINT/RELEASE round trips of the nested block.
    Raises InvalidTransition when the map forbids it, Conflict when a concurrent writer won.
    """
    model = type(instance)
    with transaction.atomic(savepoint=savepoint):
        if current is None:
            current = model._default_manager.filter(pk=instance.pk).values_list("status", flat=True).first()
        if current is None:
            raise Conflict(f"{model._meta.verbose_name} no longer exists.")
        if current == to:
            instance.refresh_from_db(fields=_refresh_fields(model, values=None))
            return TransitionResult(False, current, to)
        if to not in allowed.get(current, ()):
            raise InvalidTransition(
                f"A {model._meta.verbose_name} cannot go from {current} to {to}.",
                code="invalid_transition",
            )
        values = {"status": to, **(updates or {})}
        if hasattr(instance, "status_changed_at") and "status_changed_at" not in values:
            values["status_changed_at"] = timezone.now()
        rows = model._default_manager.filter(pk=instance.pk, status=current, **(extra_filter or {})).update(**values)
        if rows == 0:
            now_status = model._default_manager.filter(pk=instance.pk).values_list("status", flat=True).first()
            if now_status == to:
                instance.refresh_from_db(fields=_refresh_fields(model, values=None))
                return TransitionResult(False, to, to)
            raise Conflict(
                f"This {model._meta.verbose_name} changed while you were acting on it; reload and try again."
            )
        event_model._default_manager.create(
            **{event_fk: instance},
            from_status=current,
            to_status=to,
            actor=actor if getattr(actor, "pk", None) else None,
            reason=reason[:255],
            lat=lat,
            lng=lng,
            **(event_fields or {}),
        )
    # What this UPDATE wrote is set on the instance; only database-computed values are reloaded.
    computed = [name for name, value in values.items() if hasattr(value, "resolve_expression")]
    for name, value in values.items():
        if name not in computed:
            setattr(instance, name, value)
    if computed:
        instance.refresh_from_db(fields=computed)
    return TransitionResult(True, current, to)


def _refresh_fields(model, *, values) -> list[str] | None:
    """Columns to reload after a transition: the ones written, or all concrete non-relation
    fields plus FK ids when another writer may have changed anything (values=None)."""
    if values is not None:
        return list(values)
    return [f.name for f in model._meta.concrete_fields if not f.primary_key]
