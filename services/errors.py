"""The operator's one error vocabulary, answering the caller's one question: retry, or give up?

    OperatorError                          condition reason
    ├── TransientError                     TransientError    retry with backoff (after `retry_after` s if given)
    │   ├── Conflict                                         409: someone else wrote first
    │   └── Unavailable                                      connection failures, timeouts, 429, 5xx
    └── PermanentError                     ReconcileFailed   retrying cannot help until someone changes something
        ├── NotFound                                         404 (callers often treat it as a normal answer)
        ├── Forbidden                      Forbidden         401/403: RBAC or credentials
        │   └── NotGranted                                   a call `clients.permissions` does not declare (a bug)
        ├── Invalid                        InvalidObject     400/422: the object or request is wrong
        ├── Rejected                       AdminCallRejected the Restate admin API refused (e.g. META0006)
        └── InvalidSpec                    InvalidSpec       the resource's spec cannot be built (builders raise it)

Clients translate library errors at their boundary, with the most specific class and `from exc`;
builders raise `InvalidSpec`; reconcilers let them travel up unchanged. `reconcilers.failures` is
the one place that maps them onto Restate's errors and back across the journal. Messages carry the
server's own explanation, truncated, never a raw body dump. Not here: Restate's own exceptions.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 500


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OperatorError(Exception):
    """Root of every error the operator raises on purpose.

    `reason` is the CamelCase condition reason a failure of this class shows as (per class, or
    given for one error); `step` names the journaled step it failed in, once one is known."""

    reason = "ReconcileFailed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(truncate(message))
        self.message = truncate(message)
        self.step: str | None = None
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return f"{self.step}: {self.message}" if self.step else self.message


class TransientError(OperatorError):
    reason = "TransientError"

    def __init__(self, message: str, *, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
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
    reason = "Forbidden"


class NotGranted(Forbidden):
    pass


class Invalid(PermanentError):
    reason = "InvalidObject"


class Rejected(PermanentError):
    """The Restate admin API refused the request; `code` is Restate's error code when it gave one."""

    reason = "AdminCallRejected"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class InvalidSpec(PermanentError):
    """The resource's spec asks for something no object can be built from; the message says what to change."""

    reason = "InvalidSpec"


# What a person should read for the low-level causes a network call dies of (matched in the text).
_CAUSES = (
    (
        ("Name or service not known", "nodename nor servname", "Temporary failure in name resolution"),
        "its host name does not resolve",
    ),
    (("Connection refused",), "the connection was refused (nothing listens there)"),
    (("Connection reset",), "the connection was reset"),
    (
        ("Response payload is not completed", "Not enough data to satisfy", "Server disconnected"),
        "the server closed the connection mid-response",
    ),
    (("Network is unreachable", "No route to host"), "the network is unreachable"),
    (("certificate verify failed", "CERTIFICATE_VERIFY_FAILED"), "its TLS certificate is not trusted"),
)


def describe(exc: BaseException) -> str:
    """A library exception as a sentence a person reads, never a Python repr.

    Connection and timeout errors (httpx, aiohttp, OSError) often carry their real cause two levels
    down (`__cause__`/`__context__`) and sometimes no text at all (httpx's ReadTimeout); this walks
    the chain, names the common causes plainly and falls back to the class name in words."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = re.sub(r"^\[Errno -?\d+\] ", "", str(current).strip())
        if text and text not in texts:
            texts.append(text)
        current = current.__cause__ or current.__context__
    joined = "; ".join(texts)
    for needles, plain in _CAUSES:
        if any(n in joined for n in needles):
            return plain
    if "timeout" in type(exc).__name__.lower() or "timed out" in joined.lower():
        return "no answer in time (timed out)"
    if joined:
        return truncate(joined, 300)
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()


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
