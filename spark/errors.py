"""Domain errors raised by services. The API layer maps each to a clean 4xx."""


class DomainError(Exception):
    """A request that cannot be carried out as asked; nothing was changed."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class InvalidTransition(DomainError):
    """The status change is not allowed from the object's current status."""

    status_code = 409
    code = "invalid_transition"


class Conflict(DomainError):
    """Someone else changed the object first (a guarded update matched 0 rows)."""

    status_code = 409
    code = "conflict"


class Gone(DomainError):
    status_code = 410
    code = "gone"


class NotPermitted(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    """Not there for this person: another driver's or store's object (never a 403 that would
    confirm it exists)."""

    status_code = 404
    code = "not_found"


class RateLimited(DomainError):
    """Too many requests: nothing was done; try again after `retry_after` seconds (the API
    answers 429 with Retry-After)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, fields: dict | None = None):
        super().__init__(message, code=code, fields=fields)
        self.retry_after = max(1, int(retry_after))
