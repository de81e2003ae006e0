"""The error hierarchy shared by every layer of keyless.

Servers map these to HTTP in one table (:mod:`keyless.http.errors`); the CLI prints
``str(error)`` as one sentence. Verification failures are always a specific
:class:`VerificationError` subclass, never a boolean.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "Error",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Pushback",
    "StorageError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "VerificationError",
    "field_name",
    "shown",
]


class Error(Exception):
    """Base class of every error keyless raises on purpose."""

    def diagnostics(self) -> str:
        """A longer, human-oriented explanation (defaults to the message)."""
        return str(self)


class ConfigError(Error):
    """The configuration or trust material given to keyless is unusable."""


class InvalidInput(Error):
    """A request or file is malformed; the message names the field or the rule broken."""


class Unauthenticated(Error):
    """The caller's credentials (identity token, password) were missing or not accepted."""


class Forbidden(Error):
    """The caller is known but not allowed to do this."""


class NotFound(Error):
    """The requested entry, tile or resource does not exist."""


class Conflict(Error):
    """The request conflicts with existing state (for example a duplicate log entry)."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


class TooLarge(Error):
    """The request exceeds a configured limit; the message names the limit and its value."""


class UnsupportedMediaType(Error):
    """The request's content type is not one this endpoint accepts."""


class Pushback(Error):
    """The service is overloaded; try again after ``retry_after`` seconds (HTTP 429/503)."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Error):
    """The service cannot answer correctly right now (clock drift, storage down, draining)."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(Error):
    """The storage backend failed; the operation may be retried."""


class VerificationError(Error):
    """Base class of every verification failure; subclasses name what failed."""


def field_name(key: str, limit: int = 80) -> str:
    """A JSON key for an error message: as is when short and printable, else :func:`shown`."""
    return key if len(key) <= limit and key.isprintable() else shown(key, limit)


def shown(value: object, limit: int = 80) -> str:
    """A value quoted for an error message: ``repr`` (control characters escaped) of at most
    ``limit`` characters, so attacker-controlled input can neither flood a log or a terminal nor
    smuggle escape sequences into it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text)} characters)"
    return repr(text)
