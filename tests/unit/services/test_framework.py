"""Pure parts of the reconcile engine: keys, service names, failure handling."""

from __future__ import annotations

import pytest

from services.clients.kube import RESOURCES
from services.reconcilers import cloud
from services.reconcilers.framework import (
    DEGRADED_AFTER,
    MAX_TRANSIENT_RETRY_SECONDS,
    ObjectState,
    StepFailed,
    object_key,
    on_failure,
    split_key,
)


@pytest.mark.parametrize(("namespace", "name"), [(None, "env"), ("team", "svc")])
def test_keys_round_trip(namespace: str | None, name: str) -> None:
    assert split_key(object_key(namespace, name)) == (namespace, name)


def test_reconciler_service_name_avoids_the_reserved_prefix() -> None:
    assert cloud.KIND.service_name == "CloudEnvironmentReconciler"
    assert cloud.KIND.resource is RESOURCES["RestateCloudEnvironment"]


def test_permanent_failure_degrades_at_once_without_a_wakeup() -> None:
    state = ObjectState()
    outcome, degraded = on_failure(state, StepFailed("apply Deployment x", "invalid", permanent=True))
    assert outcome.requeue_after is None
    assert degraded == "apply Deployment x: invalid"
    assert not outcome.ready


def test_transient_failures_back_off_and_degrade_when_they_persist() -> None:
    state = ObjectState()
    delays, degraded = [], []
    for _ in range(7):
        outcome, why = on_failure(state, StepFailed("apply", "HTTP 500", permanent=False))
        delays.append(outcome.requeue_after)
        degraded.append(why is not None)
    assert delays == [30, 60, 120, 240, 480, MAX_TRANSIENT_RETRY_SECONDS, MAX_TRANSIENT_RETRY_SECONDS]
    assert degraded == [i + 1 >= DEGRADED_AFTER for i in range(7)]
