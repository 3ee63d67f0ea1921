"""The reconcile engine's pure policy: what a failed step means for the resource."""

from __future__ import annotations

from datetime import timedelta

from services import app, errors
from services.clients.connections import Connections
from services.reconcilers.engine import (
    DEGRADED_AFTER,
    MAX_TRANSIENT_RETRY_SECONDS,
    ObjectState,
    on_failure,
    pending_wakeup_suffices,
)
from services.settings import Settings


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


def test_a_pending_wakeup_that_comes_no_later_is_kept_and_a_later_one_is_replaced() -> None:
    pending = ObjectState(wakeup_token="t1", wakeup_at=130.0)
    assert pending_wakeup_suffices(pending, now=100.0, delay=30.0)  # due exactly then
    assert pending_wakeup_suffices(pending, now=140.0, delay=5.0)  # overdue: queued behind this pass, runs next
    assert not pending_wakeup_suffices(pending, now=100.0, delay=5.0)  # too late for this pass: a new one
    assert not pending_wakeup_suffices(ObjectState(), now=100.0, delay=30.0)  # none pending
    assert not pending_wakeup_suffices(
        ObjectState(wakeup_token="t0"), now=100.0, delay=30.0
    )  # due unknown (older state)


def test_every_reconciler_keeps_its_finished_passes_and_commands_for_the_configured_retention() -> None:
    objects = app.services(Connections(Settings(reconcile_retention_seconds=600)))
    reconcilers = [o for o in objects if o.name.endswith("Reconciler")]
    assert {o.name for o in reconcilers} == {r.kind.service_name for r in app.RECONCILERS}
    writers = [h for o in reconcilers for h in o.handlers.values() if h.kind != "shared"]
    assert len(writers) > len(reconcilers), "each reconcile, and commands"
    assert {h.journal_retention for h in writers} == {timedelta(minutes=10)}
    assert {o.handlers["reconcile"].idempotency_retention for o in reconcilers} == {timedelta(minutes=10)}
