"""The named seam through which a lower layer sets off a higher one.

Layers (lowest first): spark -> accounts -> stores -> drivers -> orders -> payments ->
dispatch. A lower layer never imports a higher one. Where orders or drivers must set off
dispatch (a batch was published, withdrawn or taken from its driver; a driver can no longer
act), they call one of the hooks below; dispatch installs the one handler of each in
`DispatchConfig.ready()` (dispatch/handlers.py). A hook is called like a function, with
keyword arguments, and returns what its handler returns.

Not Django signals: each hook has exactly one handler, it runs in the caller's transaction,
its exceptions reach the caller, and a hook nobody installed fails loudly instead of doing
nothing.
"""

from collections.abc import Callable
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
            raise ImproperlyConfigured(f"No handler installed for hook {self.name} (is dispatch in INSTALLED_APPS?).")
        return self._handler(**kwargs)

    def __repr__(self) -> str:
        return f"<Hook {self.name}>"


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
