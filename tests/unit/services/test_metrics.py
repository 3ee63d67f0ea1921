"""The per-resource gauges: every label combination reported (zeros included), none left after a deletion."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services import metrics

GREETER = {"resource_namespace": "team", "resource_name": "greeter"}
PROD = {"kind": "RestateCluster", "resource_namespace": "", "resource_name": "prod"}
VERSIONS = "restate_operator_deployment_versions"
DRAINING = "restate_operator_deployment_draining_invocations"
CONDITION = "restate_operator_resource_condition"


def value(series: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(series, labels)


def test_a_rollout_reports_every_phase_and_its_draining_work_then_forgets_it() -> None:
    metrics.observe_rollout("team", "greeter", {"Latest": 1, "Draining": 2}, 5)
    assert value(VERSIONS, **GREETER, phase="Draining") == 2
    assert value(VERSIONS, **GREETER, phase="Held") == 0
    assert value(DRAINING, **GREETER) == 5
    metrics.forget_rollout("team", "greeter")
    assert value(VERSIONS, **GREETER, phase="Latest") is None
    assert value(DRAINING, **GREETER) is None
    metrics.forget_rollout("team", "greeter")  # twice is fine: deletion may be retried


def test_conditions_per_resource_are_reported_and_forgotten() -> None:
    metrics.observe_conditions("RestateCluster", "", "prod", {"Ready": False, "Degraded": True})
    assert value(CONDITION, **PROD, condition="Degraded") == 1
    assert value(CONDITION, **PROD, condition="Ready") == 0
    metrics.forget_resource("RestateCluster", "", "prod")
    assert value(CONDITION, **PROD, condition="Degraded") is None
