"""The permission table is enforced by the client and is the chart's RBAC (see services/rbacgen.py)."""

from __future__ import annotations

from typing import Any

import pytest

from services import errors, kinds, rbacgen
from services.clients import permissions
from services.clients.kube import Kube
from services.kinds import RESOURCES
from watcher import mapping


class MustNotBeCalled:
    """The ApiClient seam: a refused call must fail before anything is sent."""

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the request must not be sent")


def kube(grants: dict[str, permissions.Grant]) -> Kube:
    return Kube(MustNotBeCalled(), grants=grants, operator_namespace="restate-operator")


async def test_an_undeclared_verb_is_refused_before_sending() -> None:
    client = kube({"Service": permissions.Grant(frozenset({"get"}))})
    with pytest.raises(errors.NotGranted, match="delete on Service is not declared"):
        await client.delete(RESOURCES["Service"], "x", "ns")


async def test_apply_needs_both_create_and_patch() -> None:
    client = kube({"ConfigMap": permissions.Grant(frozenset({"patch"}))})
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}
    with pytest.raises(errors.NotGranted, match="create on ConfigMap"):
        await client.apply(obj)


async def test_status_apply_is_checked_against_the_status_subresource() -> None:
    client = kube({"RestateCluster": permissions.Grant(permissions.APPLY)})
    obj = {"apiVersion": "restate.dev/v1", "kind": "RestateCluster", "metadata": {"name": "c"}}
    with pytest.raises(errors.NotGranted, match="RestateCluster/status"):
        await client.apply(obj, subresource="status")


async def test_operator_namespace_grants_are_refused_elsewhere() -> None:
    client = kube(permissions.SERVICES)
    with pytest.raises(errors.NotGranted, match="only in the operator namespace"):
        await client.secret_data("token", "someone-elses-namespace")


async def test_the_watcher_may_not_write() -> None:
    client = kube(permissions.WATCHER)
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns"}}
    with pytest.raises(errors.NotGranted):
        await client.apply(obj)


def test_every_granted_kind_is_a_known_resource() -> None:
    for key in [*permissions.SERVICES, *permissions.WATCHER]:
        assert key.partition("/")[0] in RESOURCES, key


def test_secrets_are_never_granted_cluster_wide() -> None:
    assert permissions.SERVICES["Secret"].operator_namespace
    # The watcher sees token Secrets' metadata (their rotation), in the operator's namespace only.
    assert permissions.WATCHER["Secret"] == permissions.Grant(permissions.OBSERVE, operator_namespace=True)
    for grants in (permissions.SERVICES, permissions.WATCHER):
        assert '"secrets"' not in rbacgen.rules(grants, operator_namespace=False)


def test_chart_rbac_rules_are_generated_from_the_table() -> None:
    assert rbacgen.TEMPLATE.read_text() == rbacgen.render(), "run `make chart-rbac`"


def test_every_kind_the_watcher_watches_is_granted_list_and_watch() -> None:
    watched = {"RestateCluster", "RestateDeployment", "RestateCloudEnvironment"}
    watched |= {*kinds.CHILD_KINDS, *kinds.OPTIONAL_CHILD_KINDS, *mapping.LABELLED, *kinds.KNATIVE_KINDS}
    observe = permissions.Grant(permissions.OBSERVE)
    assert {kind for kind in watched if permissions.WATCHER.get(kind) != observe} == set()
    assert set(permissions.WATCHER) == watched | {"Secret"}, "the watcher is granted nothing it does not watch"
