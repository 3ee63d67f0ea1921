"""A RestateCluster running a real restate-server (pod restate-0, via the pod runner), provisioned by
the operator over the node gRPC API, then used by a RestateDeployment with `register.cluster`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from devstack import hosts, procs
from devstack.operator import Operator
from tests.e2e.test_rollout import rsd
from tests.e2e.versioned import NAME, wait_ready
from tests.helpers import apply, condition, get
from tests.integration.test_cluster import cluster, storage_class, wait_for

pytestmark = pytest.mark.e2e
__all__ = ["storage_class"]  # the fixture, shared with the integration tests


@pytest.fixture
def names(operator: Operator) -> Iterator[tuple[str, str]]:
    cp = operator.stack.control_plane
    cluster_name, app_ns = f"e2e-{uuid.uuid4().hex[:6]}", f"app-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", app_ns)
    yield cluster_name, app_ns
    cp.kubectl("delete", "rsd", NAME, "-n", app_ns, "--ignore-not-found", "--wait=false")
    procs.wait_until("RestateDeployment deleted", lambda: get(operator.stack, "rsd", NAME, app_ns) is None, timeout=60)
    cp.kubectl("delete", "rsc", cluster_name, "--ignore-not-found", "--wait=false")
    cp.kubectl("delete", "namespace", app_ns, "--wait=false")


def address_of(operator: Operator, host: str) -> str:
    return hosts.entries(operator.stack.hosts_file)[host]


def test_cluster_is_provisioned_and_serves_a_deployment(
    operator: Operator, names: tuple[str, str], storage_class: str
) -> None:
    stack = operator.stack
    cluster_name, app_ns = names
    spec = cluster(
        cluster_name,
        storage_class,
        cluster={"autoProvision": True},
        config="auto-provision = false\ndefault-num-partitions = 2\n",
        security={"networkPeers": {"ingress": [], "admin": []}},
    )
    apply(stack, spec)
    obj = wait_for(stack, cluster_name, "Ready", "True", timeout=120)
    assert obj["status"]["provisioned"] is True
    assert obj["status"]["provisionedConfiguration"]["numPartitions"] == 2, "as Restate reported it"
    assert condition(obj, "ConfigDrift")["status"] == "False"
    admin = f"http://{address_of(operator, f'restate.{cluster_name}.svc.cluster.local')}:9070"
    assert httpx.get(f"{admin}/health", timeout=10).status_code == 200, "restate-0 serves its admin API"

    deployment = rsd(app_ns, "v1", stack)
    deployment["spec"]["restate"]["register"] = {"cluster": cluster_name}
    apply(stack, deployment)
    ready = wait_ready(stack, app_ns, timeout=90)
    assert condition(ready, "Ready")["reason"] == "Deployed"
    pods = ready["spec"]["template"]["metadata"]["labels"]
    assert pods == {"app": NAME}
    rs_name = next(v["name"] for v in ready["status"]["versions"] if v["phase"] == "Latest")
    rs = get(stack, "rs", rs_name, app_ns)
    assert rs is not None
    assert rs["spec"]["template"]["metadata"]["labels"][f"allow.restate.dev/{cluster_name}"] == "true"

    ingress = f"http://{address_of(operator, f'restate.{cluster_name}.svc.cluster.local')}:8080"
    answer = httpx.post(f"{ingress}/Versioned/whoami", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == "v1"
    registered = httpx.get(f"{admin}/deployments", timeout=10).json()["deployments"]
    assert [d["uri"] for d in registered] == [f"http://{rs_name}.{app_ns}.svc.cluster.local:9080/"]


def test_config_drift_after_provisioning_is_reported(
    operator: Operator, names: tuple[str, str], storage_class: str
) -> None:
    stack = operator.stack
    cluster_name, _ = names
    spec = cluster(
        cluster_name,
        storage_class,
        cluster={"autoProvision": True},
        config="auto-provision = false\ndefault-num-partitions = 2\n",
    )
    apply(stack, spec)
    wait_for(stack, cluster_name, "Ready", "True", timeout=120)
    spec["spec"]["config"] = "auto-provision = false\ndefault-num-partitions = 4\n"
    apply(stack, spec)
    obj = wait_for(stack, cluster_name, "ConfigDrift", "True", timeout=60)
    assert "default-num-partitions is 4 but the cluster has 2" in condition(obj, "ConfigDrift")["message"]
