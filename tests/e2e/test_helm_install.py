"""The operator installed as users install it: `helm install charts/restate-operator` on a fresh cluster.

A control plane of its own (no host-process operator on it): the pod runner runs the chart's pods,
the bootstrap Restate as a real restate-server and the services and watcher under their own
ServiceAccount tokens, so every Kubernetes call below passes the chart's RBAC or fails with it.

Covered, in order (the module shares one install): the pods and what the chart wires between them
(self-registration, request identity, least privilege); a RestateDeployment rollout with drain and
a `helm upgrade` in the middle of it; a RestateCluster; a verb taken away from the ClusterRole and
given back; `helm uninstall` keeping CRDs and custom resources.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.chart import NAMESPACE, RELEASE, ChartInstall
from devstack.images import VERSIONED_IMAGE
from devstack.stack import Stack
from tests.helpers import apply, condition, get
from tests.integration.test_cluster import cluster, create_storage_class, wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
APP = "versioned"
SERVICES_URL = f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:9080/"
# Resyncs every 15 s, so a permanent failure (a Forbidden) heals by itself soon after RBAC is fixed.
VALUES = ("watcher.replicaCount=2", "watcher.resyncSeconds=15")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartInstall]:
    stack = Stack(Path(tmp_path_factory.mktemp("helm-stack")), standalone_restate=False)
    stack.start()
    try:
        installed = ChartInstall(stack)
        installed.install(*VALUES)
        yield installed
    finally:
        stack.stop()


def rsd(namespace: str, tag: str) -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "containers": [
                        {
                            "name": APP,
                            "image": f"{VERSIONED_IMAGE}:{tag}",
                            "ports": [{"name": "restate", "containerPort": 9080}],
                        }
                    ]
                },
            },
            # The bootstrap Restate, by its Service: what the README walkthrough uses.
            "restate": {"register": {"service": {"name": "restate", "namespace": NAMESPACE}}, "drainDelaySeconds": 1},
        },
    }


def phases(stack: Stack, namespace: str) -> dict[str, str]:
    obj = get(stack, "rsd", APP, namespace) or {}
    return {v["name"]: v["phase"] for v in (obj.get("status") or {}).get("versions") or []}


def ready(stack: Stack, namespace: str) -> bool:
    obj = get(stack, "rsd", APP, namespace)
    if obj is None:
        return False
    cond = condition(obj, "Ready")
    return cond.get("status") == "True" and cond.get("observedGeneration") == obj["metadata"]["generation"]


def deployments(release: ChartInstall) -> list[Obj]:
    listed: list[Obj] = httpx.get(f"{release.admin_url}/deployments", timeout=10).json()["deployments"]
    return listed


def test_chart_runs_the_bootstrap_restate_and_the_operator_wired_together(release: ChartInstall) -> None:
    pods = {p["name"]: p for p in release.pods()}
    assert "restate-0" in pods
    services = [p for n, p in pods.items() if n.startswith(f"{RELEASE}-") and "-watcher-" not in n]
    watchers = [p for n, p in pods.items() if n.startswith(f"{RELEASE}-watcher-")]
    assert len(services) == 1
    assert len(watchers) == 2, "two watcher replicas: duplicate forwards are deduplicated by Restate"
    assert all(p["alive"] for p in pods.values())

    ours = [d for d in deployments(release) if d["uri"] == SERVICES_URL]
    assert len(ours) == 1, "the services registered their Service URL themselves, once"
    unsigned = httpx.get(f"http://{services[0]['ip']}:9080/discover", timeout=10)
    assert unsigned.status_code == 401, "only requests signed by the bootstrap Restate are served"

    cp = release.stack.control_plane
    account = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
    assert cp.kubectl("auth", "can-i", "get", "secrets", "-n", NAMESPACE, "--as", account).strip() == "yes"
    denied = cp.kubectl_result("auth", "can-i", "get", "secrets", "-n", "default", "--as", account)
    assert denied.stdout.strip() == "no", "Secrets only in the operator namespace"
    watcher = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-watcher"
    assert cp.kubectl_result("auth", "can-i", "patch", "services", "-A", "--as", watcher).stdout.strip() == "no"


def test_rollout_drains_through_a_helm_upgrade_without_losing_work(release: ChartInstall) -> None:
    stack, namespace = release.stack, f"app-{uuid.uuid4().hex[:6]}"
    stack.control_plane.kubectl("create", "namespace", namespace)
    apply(stack, rsd(namespace, "v1"))
    procs.wait_until("v1 Ready", lambda: ready(stack, namespace), timeout=90)
    ingress = release.ingress_url
    assert httpx.post(f"{ingress}/Versioned/whoami", timeout=30).json() == "v1"
    held = httpx.post(f"{ingress}/Versioned/hold/send", json=12, timeout=30).json()["invocationId"]
    operator_id = next(d["id"] for d in deployments(release) if d["uri"] == SERVICES_URL)

    apply(stack, rsd(namespace, "v2"))
    procs.wait_until("v2 Ready", lambda: ready(stack, namespace), timeout=90)
    assert httpx.post(f"{ingress}/Versioned/whoami", timeout=30).json() == "v2"
    assert "Draining" in phases(stack, namespace).values(), "v1 still runs the held invocation"

    release.install(*VALUES, "podAnnotations.upgraded=yes")  # new operator pods mid-drain
    output = f"{ingress}/restate/invocation/{held}/output"
    procs.wait_until("the held invocation", lambda: httpx.get(output, timeout=30).status_code == 200, timeout=60)
    assert httpx.get(output, timeout=30).json() == "started on v1, finished on v1"
    procs.wait_until(
        "v1 drained and deregistered", lambda: "Draining" not in phases(stack, namespace).values(), timeout=60
    )
    uris = [d["uri"] for d in deployments(release)]
    assert len(uris) == len(set(uris)), f"no duplicate registrations: {uris}"
    assert_two_watchers_forwarded_and_restate_ran_each_once(release)
    assert [d["id"] for d in deployments(release) if d["uri"] == SERVICES_URL] == [operator_id]
    stack.control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def assert_two_watchers_forwarded_and_restate_ran_each_once(release: ChartInstall) -> None:
    """Both watcher replicas forward every change; the idempotency keys make Restate run each once."""
    # The upgrade's install waited for both new watchers to be ready, i.e. to have listed every watched
    # kind, EndpointSlices included; a ready one may still hold its first forwards in the debounce.
    assert release.watchers_ready(2)
    urls = [f"http://{p['ip']}:8082/metrics" for p in release.pods() if p["name"].startswith(f"{RELEASE}-watcher-")]
    procs.wait_until(
        "both watchers to forward",
        lambda: all(counted(u, "restate_watcher_forwarded_total{") > 0 for u in urls),
        timeout=30,
    )
    query = (
        "SELECT idempotency_key, count(*) AS runs FROM sys_invocation WHERE target_service_name = "
        "'DeploymentReconciler' AND idempotency_key IS NOT NULL GROUP BY idempotency_key"
    )
    answer = httpx.post(
        f"{release.admin_url}/query", json={"query": query}, headers={"accept": "application/json"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    runs = {row["idempotency_key"]: row["runs"] for row in answer.json()["rows"]}
    assert runs, "the forwards carry idempotency keys"
    assert set(runs.values()) == {1}, f"an idempotency key ran more than once: {runs}"


def counted(metrics_url: str, prefix: str) -> float:
    """The sum of a Prometheus counter's samples whose line starts with `prefix`."""
    lines = httpx.get(metrics_url, timeout=10).text.splitlines()
    return sum(float(line.rpartition(" ")[2]) for line in lines if line.startswith(prefix))


def test_restate_cluster_comes_up_under_the_chart_rbac(release: ChartInstall) -> None:
    stack, name = release.stack, f"rsc-{uuid.uuid4().hex[:6]}"
    create_storage_class(stack, f"sc-{name}")
    spec = cluster(
        name,
        f"sc-{name}",
        cluster={"autoProvision": True},
        config="auto-provision = false\ndefault-num-partitions = 2\n",
    )
    apply(stack, spec)
    obj = wait_for(stack, name, "Ready", "True", timeout=120)
    assert obj["status"]["provisioned"] is True
    stack.control_plane.kubectl("delete", "rsc", name, "--wait=false")


def test_verb_taken_from_the_cluster_role_is_a_clear_forbidden_and_recovers(release: ChartInstall) -> None:
    stack, namespace = release.stack, f"rbac-{uuid.uuid4().hex[:6]}"
    cp = stack.control_plane
    role = json.loads(cp.kubectl("get", "clusterrole", RELEASE, "-o", "json"))
    index = next(i for i, r in enumerate(role["rules"]) if "services" in r["resources"] and r["apiGroups"] == [""])
    removal = [{"op": "remove", "path": f"/rules/{index}"}]
    cp.kubectl("patch", "clusterrole", RELEASE, "--type=json", "-p", json.dumps(removal))
    cp.kubectl("create", "namespace", namespace)
    apply(stack, rsd(namespace, "v1"))

    def degraded() -> bool:
        return condition(get(stack, "rsd", APP, namespace), "Degraded").get("status") == "True"

    procs.wait_until("Degraded", degraded, timeout=60)
    cond = condition(get(stack, "rsd", APP, namespace), "Degraded")
    assert cond["reason"] == "Forbidden"
    assert f"system:serviceaccount:{NAMESPACE}:{RELEASE}" in cond["message"]
    assert "services" in cond["message"]
    assert all(p["alive"] for p in release.pods()), "a Forbidden is a condition, not a crash loop"

    release.install(*VALUES, "podAnnotations.upgraded=yes")  # helm puts the rule back
    procs.wait_until("Ready after RBAC is restored", lambda: ready(stack, namespace), timeout=90)
    cp.kubectl("delete", "namespace", namespace, "--wait=false")


def test_uninstall_keeps_crds_and_custom_resources(release: ChartInstall) -> None:
    stack, namespace = release.stack, f"kept-{uuid.uuid4().hex[:6]}"
    cp = stack.control_plane
    cp.kubectl("create", "namespace", namespace)
    apply(stack, rsd(namespace, "v1"))
    procs.wait_until("Ready", lambda: ready(stack, namespace), timeout=90)
    release.uninstall()
    crds = cp.kubectl("get", "crd", "-o", "name").split()
    plurals = ("restateclusters", "restatedeployments", "restatecloudenvironments")
    assert {f"customresourcedefinition.apiextensions.k8s.io/{p}.restate.dev" for p in plurals} <= set(crds)
    assert get(stack, "rsd", APP, namespace) is not None
    assert cp.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").strip() == ""
