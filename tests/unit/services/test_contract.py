"""The watcher ↔ reconciler contract: keys, service names, paths and the request body."""

from __future__ import annotations

import pytest

from services import contract, kinds


@pytest.mark.parametrize(("namespace", "name"), [(None, "env"), ("team", "svc")])
def test_keys_round_trip(namespace: str | None, name: str) -> None:
    assert contract.split_key(contract.object_key(namespace, name)) == (namespace, name)


def test_reconciler_service_names_avoid_the_reserved_prefix() -> None:
    assert [k.service_name for k in kinds.CUSTOM] == [
        "ClusterReconciler",
        "DeploymentReconciler",
        "CloudEnvironmentReconciler",
    ]


def test_key_with_a_slash_is_url_encoded_in_the_path() -> None:
    path = contract.reconcile_path("RestateDeployment", "team/svc")
    assert path == "/DeploymentReconciler/team%2Fsvc/reconcile/send"


def test_an_empty_body_is_a_forced_manual_reconcile() -> None:
    assert contract.ReconcileRequest.model_validate({}) == contract.ReconcileRequest(reason="manual")


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        contract.ReconcileRequest.model_validate({"reason": "because"})
