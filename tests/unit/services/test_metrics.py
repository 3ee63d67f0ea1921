"""The rollout gauges: every phase reported (zeros included), and nothing left behind by a deleted resource."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services import metrics


def value(series: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(series, labels)


def test_a_rollout_reports_every_phase_and_its_draining_work_then_forgets_it() -> None:
    metrics.observe_rollout("team", "greeter", {"Latest": 1, "Draining": 2}, 5)
    series = "restate_operator_deployment_versions"
    assert value(series, resource_namespace="team", resource_name="greeter", phase="Draining") == 2
    assert value(series, resource_namespace="team", resource_name="greeter", phase="Held") == 0
    assert value("restate_operator_deployment_draining_invocations", resource_namespace="team", resource_name="greeter") == 5
    metrics.forget_rollout("team", "greeter")
    assert value(series, resource_namespace="team", resource_name="greeter", phase="Latest") is None
    assert value("restate_operator_deployment_draining_invocations", resource_namespace="team", resource_name="greeter") is None
    metrics.forget_rollout("team", "greeter")  # twice is fine: deletion may be retried


def test_conditions_per_resource_are_reported_and_forgotten() -> None:
    metrics.observe_conditions("RestateCluster", "", "prod", {"Ready": False, "Degraded": True})
    series = "restate_operator_resource_condition"
    assert value(series, kind="RestateCluster", resource_namespace="", resource_name="prod", condition="Degraded") == 1
    assert value(series, kind="RestateCluster", resource_namespace="", resource_name="prod", condition="Ready") == 0
    metrics.forget_resource("RestateCluster", "", "prod")
    assert value(series, kind="RestateCluster", resource_namespace="", resource_name="prod", condition="Degraded") is None
