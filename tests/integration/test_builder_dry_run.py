"""The apiserver's verdict on what the builders make from any valid spec: for a sample drawn from
`tests/specs.py`, the resource itself and its version's ReplicaSet and Service pass a server-side
dry run (nothing persists). The unit property tests check the same objects' invariants in bulk.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from devstack.control_plane import ControlPlane
from devstack.stack import Stack
from devstack.tools import REPO
from services.builders import deployment as build
from tests.specs import deployments

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NAMESPACE = f"prop-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def kube(stack: Stack) -> Iterator[ControlPlane]:
    cp = stack.control_plane
    cp.kubectl("apply", "--server-side", "-f", str(REPO / "crd"))
    cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    cp.kubectl("create", "namespace", NAMESPACE)
    yield cp
    cp.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def dry_run(kube: ControlPlane, *objs: Obj) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    result = kube.kubectl_result("create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(listed))
    assert result.returncode == 0, result.stderr[:1000]


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rsd=deployments(namespace=NAMESPACE))
def test_any_valid_spec_builds_objects_the_apiserver_accepts(kube: ControlPlane, rsd: Obj) -> None:
    hash_ = build.version_hash(rsd)
    resource = {k: v for k, v in rsd.items() if k != "status"}
    resource["metadata"] = {k: v for k, v in rsd["metadata"].items() if k != "uid"}
    # Children carry an ownerReference to a uid that does not exist; a dry run accepts that, as the
    # apiserver does for real (the garbage collector, not admission, deals with dangling owners).
    dry_run(kube, resource, build.replica_set(rsd, hash_, replicas=1), build.version_service(rsd, hash_, "uid-1"))
