"""The one place where our error vocabulary (`services.errors`) meets Restate's.

Inside a journaled step: a `PermanentError` becomes a `TerminalError` (never retried; the journal
records its class and reason), a `TransientError` with `retry_after` a `RetryableError` with that
delay, anything else is retried by Restate with the step's policy. After the step: Restate hands
back a `TerminalError` (ours, or its own once the retries ran out), which `from_terminal` turns
into our class again, named after the step. A command handler's error becomes a `TerminalError`
with an HTTP status, so a person with curl reads 404 for an unknown version.

Not here: what a failure means for a resource (Degraded, backoff): that is `engine.on_failure`.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate.exceptions import RetryableError

from services import errors

# Status codes of the TerminalErrors we raise; Restate reports a cancelled invocation as 409.
PERMANENT_STATUS = 422
CANCELLED_STATUS = 409
COMMAND_STATUS: dict[type[errors.OperatorError], int] = {
    errors.NotFound: 404,
    errors.InvalidSpec: 400,
    errors.Invalid: 400,
    errors.Forbidden: 403,
}
_CLASSES: dict[str, type[errors.OperatorError]] = {
    cls.__name__: cls
    for cls in (
        errors.PermanentError,
        errors.NotFound,
        errors.Forbidden,
        errors.NotGranted,
        errors.Invalid,
        errors.Rejected,
        errors.InvalidSpec,
    )
}


class StepFailed(Exception):
    """A passing failure as Restate records it: the SDK journals `repr()` of what a step raised, and
    once the step's attempts run out that text becomes the resource's message, so it must read as
    our message (`Unavailable("query: ConnectError(...)")` did not)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return self.message


def to_restate(exc: errors.OperatorError) -> Exception:
    """What a step body raises to Restate instead of `exc` (the caller chains it with `from exc`)."""
    if isinstance(exc, errors.PermanentError):
        metadata = {"error": type(exc).__name__, "reason": exc.reason}
        return restate.TerminalError(exc.message, status_code=PERMANENT_STATUS, metadata=metadata)
    if isinstance(exc, errors.TransientError) and exc.retry_after:
        return RetryableError(exc.message, retry_after=timedelta(seconds=exc.retry_after))
    return StepFailed(exc.message)


def is_cancellation(exc: restate.TerminalError) -> bool:
    """The invocation was cancelled: let it end, never record it as the resource's failure."""
    return exc.status_code == CANCELLED_STATUS


def from_terminal(step: str, exc: restate.TerminalError) -> errors.OperatorError:
    """Our error for a step that failed for good: its own class when it was ours and permanent, else
    transient (Restate gave up retrying a passing failure, and the next pass may succeed)."""
    metadata = exc.metadata or {}
    error: errors.OperatorError
    if exc.status_code == PERMANENT_STATUS:
        error = _CLASSES.get(metadata.get("error", ""), errors.PermanentError)(exc.message)
        error.reason = metadata.get("reason") or error.reason
    else:
        error = errors.TransientError(exc.message)
    error.step = step
    return error


def command_error(exc: errors.OperatorError) -> restate.TerminalError:
    """The answer a person calling a command handler gets for `exc`."""
    status = next((code for cls, code in COMMAND_STATUS.items() if isinstance(exc, cls)), 500)
    return restate.TerminalError(str(exc), status_code=status)
