"""The errors our clients raise, answering the caller's one question: retry, or give up?

    OperatorError
    ├── TransientError        retry with backoff (optionally after `retry_after` seconds)
    │   ├── Conflict          409: someone else wrote first
    │   └── Unavailable       connection failures, timeouts, 429, 5xx
    └── PermanentError        retrying cannot help until someone changes something
        ├── NotFound          404 (callers often treat it as a normal answer)
        ├── Forbidden         401/403: RBAC or credentials
        │   └── NotGranted    a call `clients.permissions` does not declare (a bug: caught before sending)
        ├── Invalid           400/422: the object or request is wrong
        └── Rejected          the Restate admin API refused (e.g. META0006 breaking change)

Library errors are translated at the client boundary, with the most specific class and `from exc`.
Messages carry the server's own explanation, truncated, never a raw body dump.
"""

from __future__ import annotations

MAX_MESSAGE = 500


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OperatorError(Exception):
    """Root of everything our clients raise."""

    def __init__(self, message: str) -> None:
        super().__init__(truncate(message))
        self.message = truncate(message)


class TransientError(OperatorError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(TransientError):
    pass


class Unavailable(TransientError):
    pass


class PermanentError(OperatorError):
    pass


class NotFound(PermanentError):
    pass


class Forbidden(PermanentError):
    pass


class NotGranted(Forbidden):
    pass


class Invalid(PermanentError):
    pass


class Rejected(PermanentError):
    """The Restate admin API refused the request; `code` is Restate's error code when it gave one."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def from_status(status: int, message: str, *, retry_after: float | None = None) -> OperatorError:
    """The error class for an HTTP status from the Kubernetes API."""
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (401, 403):
        return Forbidden(message)
    if status in (400, 422):
        return Invalid(message)
    if status == 429 or status >= 500:
        return Unavailable(message, retry_after=retry_after)
    return Invalid(f"unexpected HTTP {status}: {message}")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from these servers and treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
