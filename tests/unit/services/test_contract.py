"""The watcher ↔ reconciler contract: keys, service names, paths and the request body."""

from __future__ import annotations

from typing import get_args

import pytest

from services import contract, kinds
from watcher import mapping


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


def test_the_watcher_sends_only_reasons_the_contract_knows() -> None:
    assert set(get_args(mapping.Reason)) <= set(get_args(contract.Reason))


def test_every_kind_the_watcher_maps_by_label_is_in_the_registry() -> None:
    assert tuple(mapping.LABELLED) == kinds.LABELLED_KINDS


def test_the_registry_derives_identity_from_the_models() -> None:
    assert [(k.kind, k.api_version, k.plural) for k in kinds.CUSTOM] == [
        ("RestateCluster", "restate.dev/v1", "restateclusters"),
        ("RestateDeployment", "restate.dev/v1beta1", "restatedeployments"),
        ("RestateCloudEnvironment", "restate.dev/v1beta1", "restatecloudenvironments"),
    ]
    assert kinds.RESOURCES["RestateDeployment"].path("team", "svc", "status") == (
        "/apis/restate.dev/v1beta1/namespaces/team/restatedeployments/svc/status"
    )
