"""What each kind of outbox message says and does once sent: registered by the app that owns
the message (the seam a higher layer sets, so the outbox, low in the layers, never imports
orders or payments). An app registers its kinds in its AppConfig.ready()."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.core.mail import EmailMessage

from .models import Message


class Skip(Exception):
    """Raised by a builder when there is nothing to send any more (the order moved on, no
    email address). The message is closed with this reason and never tried again."""


@dataclass(frozen=True)
class Sender:
    # The email for this message, built when it is sent (`now` is the sending time); raises Skip.
    build: Callable[[Message, datetime], EmailMessage]
    # Called in the same transaction that stamps sent_at (e.g. a waiting period starts now).
    on_sent: Callable[[Message, datetime], None] | None = None


_SENDERS: dict[str, Sender] = {}


def register(
    kind: str,
    *,
    build: Callable[[Message, datetime], EmailMessage],
    on_sent: Callable[[Message, datetime], None] | None = None,
) -> None:
    _SENDERS[kind] = Sender(build=build, on_sent=on_sent)


def sender_for(kind: str) -> Sender:
    try:
        return _SENDERS[kind]
    except KeyError:
        raise LookupError(f"no outbox sender registered for {kind!r}") from None
