"""The named seam through which a lower layer sets off a higher one.

Layers (lowest first): spark -> outbox -> accounts -> stores -> drivers -> orders ->
payments -> dispatch. A lower layer never imports a higher one, not even inside a function.
Where it must set off (or ask) a higher layer, it calls one of the hooks below, and the
higher layer installs the one handler of each in its AppConfig.ready():

- orders (`OrdersConfig.ready()`, orders/handlers.py), for drivers: what becomes of the batch
  a driver holds as they are taken off work (held_batch_plan, then held_batch_apply),
  whether a driver holds an active batch (driver_holds_batch), and a slot check-in that also
  checks in the driver's batch at that store (driver_at_store);
- dispatch (`DispatchConfig.ready()`, dispatch/handlers.py), for orders and drivers: a batch
  was published, withdrawn or taken from its driver, a driver can no longer act, a held
  batch goes back to dispatch;
- payments (`PaymentsConfig.ready()`, payments/handlers.py), for orders: a batch completed or
  returned, its pay settles (batch_closed);
- drivers (`DriversConfig.ready()`, drivers/handlers.py), for stores: whether an account is a
  driver's (user_is_driver), which may not be store staff.

A hook is called like a function, with keyword arguments, and returns what its handler
returns.

Not Django signals: each hook has exactly one handler, it runs in the caller's transaction,
its exceptions reach the caller, and a hook nobody installed fails loudly instead of doing
nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class Hook:
    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc
        self._handler: Callable[..., Any] | None = None

    def install(self, handler: Callable[..., Any]) -> None:
        """Set the one handler (AppConfig.ready() of the higher layer). Installing the same
        handler again (ready() may run twice in tests) changes nothing; another one is an error."""
        if self._handler is not None and self._handler is not handler:
            raise ImproperlyConfigured(f"Hook {self.name} already has a handler: {self._handler!r}.")
        self._handler = handler

    def __call__(self, **kwargs: Any) -> Any:
        if self._handler is None:
            raise ImproperlyConfigured(f"No handler installed for hook {self.name} (is its app in INSTALLED_APPS?).")
        return self._handler(**kwargs)

    def __repr__(self) -> str:
        return f"<Hook {self.name}>"


# --- Installed by dispatch ----------------------------------------------------------------

batch_published = Hook(
    "batch_published",
    "batch_published(batch_id): a batch is on offer (published, or back to dispatch) in the current "
    "transaction; start dispatch once committed.",
)
batch_withdrawn = Hook(
    "batch_withdrawn",
    "batch_withdrawn(batch, actor, reason) -> int: the batch is off offer (cancelled or pulled back); "
    "withdraw its pending offers and tell their drivers. Returns how many were withdrawn.",
)
batch_taken_from_driver = Hook(
    "batch_taken_from_driver",
    "batch_taken_from_driver(batch, actor, reason): its driver loses the batch before pickup (the caller "
    "holds its row lock and changes its status next): release the accepted offer, pay the trip, tell them.",
)
driver_cannot_act = Hook(
    "driver_cannot_act",
    "driver_cannot_act(driver, actor, reason) -> int: the driver was taken off work; withdraw their "
    "pending offers so dispatch moves on now. Returns how many were withdrawn.",
)
held_batch_to_dispatch = Hook(
    "held_batch_to_dispatch",
    "held_batch_to_dispatch(batch, actor, reason): take a batch back from a driver who can no longer "
    "act on it and offer it again from round 1.",
)


# --- Installed by orders ------------------------------------------------------------------


@dataclass(frozen=True)
class HeldBatchPlan:
    """What becomes of the batch a driver holds as they are taken off work, decided (and the
    batch row locked) by held_batch_plan before the driver's transition, carried out by
    held_batch_apply after it, in the same transaction."""

    batch: Any  # orders.models.Batch, its row locked
    decision: str  # "finish" or "dispatch" (orders.held_batches.HELD_BATCH_*)
    summary: str  # for the driver's event, e.g. "held batch 12: sent back to dispatch"


held_batch_plan = Hook(
    "held_batch_plan",
    "held_batch_plan(driver, to, decision) -> HeldBatchPlan | None: the driver (row locked by the caller) "
    'moves to status `to`; `decision` is what ops chose for their batch ("finish", "dispatch" or None for '
    "the default). Refuses an unknown decision (DomainError bad_batch_decision); when the driver stops being "
    "active, locks the batch they hold and refuses a decision it does not allow (batch_picked_up). None: no "
    "batch to decide about.",
)
held_batch_apply = Hook(
    "held_batch_apply",
    "held_batch_apply(plan, actor): carry out a HeldBatchPlan once the driver's transition is recorded: let "
    "them finish the batch, or send it back to dispatch.",
)
driver_at_store = Hook(
    "driver_at_store",
    "driver_at_store(driver_id, store_id, presence, actor): the driver checked in at the store for a slot "
    "(presence: stores.presence.StorePresence, already verified); check in their assigned batch at that store "
    "too, in the caller's transaction. Returns how many batches it checked in.",
)
driver_holds_batch = Hook(
    "driver_holds_batch",
    "driver_holds_batch(driver_id) -> bool: the driver holds an active batch (assigned to them, not done).",
)


# --- Installed by payments ----------------------------------------------------------------


batch_closed = Hook(
    "batch_closed",
    "batch_closed(batch_id): a batch is completed or returned in the current transaction: settle its pay "
    "once committed.",
)


# --- Installed by drivers -----------------------------------------------------------------


user_is_driver = Hook(
    "user_is_driver",
    "user_is_driver(user_id) -> bool: the account has a driver profile (stores refuses it as staff: a "
    "driver must not publish or hand over batches they could claim).",
)
