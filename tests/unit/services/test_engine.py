"""The reconcile engine's pure policy: what a failed step means for the resource."""

from __future__ import annotations

from services import errors
from services.reconcilers.engine import DEGRADED_AFTER, MAX_TRANSIENT_RETRY_SECONDS, ObjectState, on_failure


def failed(error: errors.OperatorError, step: str) -> errors.OperatorError:
    error.step = step
    return error


def test_permanent_failure_degrades_at_once_without_a_wakeup() -> None:
    state = ObjectState()
    outcome, degraded = on_failure(state, failed(errors.Invalid("invalid"), "apply Deployment x"))
    assert outcome.requeue_after is None
    assert degraded == "apply Deployment x: invalid"
    assert (outcome.ready, outcome.reason) == (False, "InvalidObject")


def test_transient_failures_back_off_and_degrade_when_they_persist() -> None:
    state = ObjectState()
    delays, degraded = [], []
    for _ in range(7):
        outcome, why = on_failure(state, failed(errors.Unavailable("HTTP 500"), "apply"))
        delays.append(outcome.requeue_after)
        degraded.append(why is not None)
        assert (outcome.reason, outcome.message) == ("TransientError", "apply: HTTP 500 (retrying)")
    assert delays == [30, 60, 120, 240, 480, MAX_TRANSIENT_RETRY_SECONDS, MAX_TRANSIENT_RETRY_SECONDS]
    assert degraded == [i + 1 >= DEGRADED_AFTER for i in range(7)]
