"""Pure parts of the Knative data plane: what it reports for whom, and which host maps where."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from devstack import images, knative
from devstack.knative import Backend, Forwarder

NOW = "2026-12-01T00:00:00Z"
LATER = "2026-12-01T00:05:00Z"


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("restate-operator.local/examples/versioned:v1", "restate-operator.local"),
        ("docker.io/restatedev/restate:1.7.12", "index.docker.io"),
        ("restatedev/restate:1.7.12", "index.docker.io"),
        ("nginx", "index.docker.io"),
        ("localhost:5000/app:1", "localhost:5000"),
        ("ghcr.io/org/app@sha256:abc", "ghcr.io"),
    ],
)
def test_image_registry_is_named_as_knatives_skip_list_compares_it(image: str, registry: str) -> None:
    assert knative.image_registry(image) == registry


def test_every_image_the_pod_runner_runs_skips_tag_resolution() -> None:
    overrides = knative.config_overrides()["config-deployment"]
    skipped = overrides["registries-skipping-tag-resolving"].split(",")
    assert {"restate-operator.local", "index.docker.io", "kind.local", "ko.local", "dev.local"} <= set(skipped)
    assert all(knative.image_registry(i) in skipped for i in [*images.IMAGES, *images.RESTATE_IMAGES])
    assert knative.image_registry(overrides["queue-sidecar-image"]) in skipped


def pa(status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": "svc-00001", "namespace": "ns", "generation": generation},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc-00001-deployment"}},
        "status": status or {},
    }


def deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {"spec": {"replicas": replicas}, "status": {"ready_replicas": ready or None}}


def test_pod_autoscaler_waits_for_a_ready_pod_then_reports_what_the_autoscaler_would() -> None:
    assert knative.pa_status(pa(), None, NOW) is None
    assert knative.pa_status(pa(), deployment(1, 0), NOW) is None
    status = knative.pa_status(pa(), deployment(1, 1), NOW)
    assert status is not None
    assert status["serviceName"] == "svc-00001"
    assert status["metricsServiceName"] == "svc-00001-private"
    assert (status["observedGeneration"], status["desiredScale"], status["actualScale"]) == (1, 1, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Active": "True",
        "ScaleTargetInitialized": "True",
        "SKSReady": "True",
        "Ready": "True",
    }


def test_pod_autoscaler_is_patched_again_only_when_something_changed() -> None:
    status = knative.pa_status(pa(), deployment(1, 1), NOW)
    assert knative.pa_status(pa(status), deployment(1, 1), LATER) is None
    bumped = knative.pa_status(pa(status, generation=2), deployment(1, 1), LATER)
    assert bumped is not None
    assert bumped["observedGeneration"] == 2
    assert {c["lastTransitionTime"] for c in bumped["conditions"]} == {NOW}, "no condition changed status"
    # Initialized once, it stays so when the pod goes; only Active and Ready follow.
    gone = knative.pa_status(pa(status), deployment(1, 0), LATER)
    assert gone is not None
    conditions = {c["type"]: (c["status"], c["lastTransitionTime"]) for c in gone["conditions"]}
    assert conditions["ScaleTargetInitialized"] == ("True", NOW)
    assert conditions["Active"] == ("False", LATER)


def rule(hosts: list[str], *splits: tuple[str, int], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    path: dict[str, Any] = {
        "splits": [{"serviceName": r, "serviceNamespace": "ns", "servicePort": 80, "percent": p} for r, p in splits]
    }
    paths = [path]
    if headers:
        paths.insert(0, {"headers": headers, "splits": [{"serviceName": "tagged", "serviceNamespace": "ns"}]})
    return {"hosts": hosts, "visibility": "ClusterLocal", "http": {"paths": paths}}


def kingress(*rules: dict[str, Any], generation: int = 1, observed: int | None = None) -> dict[str, Any]:
    status = {} if observed is None else {"observedGeneration": observed}
    return {
        "metadata": {"name": "svc", "namespace": "ns", "generation": generation},
        "spec": {"rules": list(rules)},
        "status": status,
    }


def test_kingress_needs_a_status_for_each_generation_not_yet_observed() -> None:
    assert knative.kingress_needs_status(kingress())
    assert knative.kingress_needs_status(kingress(generation=3, observed=2))
    assert not knative.kingress_needs_status(kingress(generation=3, observed=3))


def test_kingress_status_is_ready_with_the_private_load_balancer_the_route_needs() -> None:
    status = knative.kingress_status(kingress(generation=3, observed=2), NOW)
    assert status["observedGeneration"] == 3
    assert status["privateLoadBalancer"]["ingress"][0]["domainInternal"] == knative.LOAD_BALANCER
    assert {c["type"] for c in status["conditions"] if c["status"] == "True"} == {
        "LoadBalancerReady",
        "NetworkConfigured",
        "Ready",
    }


MAIN_HOSTS = ["svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"]


def test_each_rule_host_routes_to_its_default_paths_biggest_split() -> None:
    ingress = kingress(
        rule(MAIN_HOSTS, ("svc-00001", 20), ("svc-00002", 80), headers={"Knative-Serving-Tag": {"exact": "v1"}}),
        rule(["v1-svc.ns.svc.cluster.local"], ("svc-00001", 100)),
    )
    assert knative.kingress_routes(ingress) == {
        **dict.fromkeys(MAIN_HOSTS, ("ns", "svc-00002")),
        "v1-svc.ns.svc.cluster.local": ("ns", "svc-00001"),
    }
    assert knative.kingress_revisions(ingress) == {("ns", "svc-00001"), ("ns", "svc-00002"), ("ns", "tagged")}


def test_hosts_map_only_to_revisions_with_a_serving_process() -> None:
    ingress = kingress(rule(MAIN_HOSTS, ("svc-00002", 100)), rule(["v1-svc.ns.svc.cluster.local"], ("svc-00001", 100)))
    serving = {("ns", "svc-00002"): Backend("127.9.0.2", 9080)}
    assert knative.route_entries([ingress], serving) == dict.fromkeys(MAIN_HOSTS, "127.9.0.2")


def test_kingress_is_routable_once_every_runnable_revision_serves() -> None:
    ingress = kingress(rule(MAIN_HOSTS, ("svc-00001", 50), ("svc-00002", 50)))
    both = {("ns", "svc-00001"), ("ns", "svc-00002")}
    one = {("ns", "svc-00001"): Backend("127.9.0.1", 9080)}
    assert not knative.kingress_routable(ingress, one, both)
    assert knative.kingress_routable(ingress, one, {("ns", "svc-00001")}), "svc-00002 runs in kwok only"
    assert knative.kingress_routable(ingress, {}, set()), "nothing to reach"


def revision_pod(name: str, revision: str, *, image: str = f"{images.VERSIONED_IMAGE}:v1", ready: bool = True):
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {knative.REVISION_LABEL: revision},
        },
        "spec": {
            "node_name": "kwok-node-0",
            "containers": [
                {"name": "user-container", "image": image, "ports": [{"container_port": 9080}]},
                {"name": "queue-proxy", "image": knative.QUEUE_SIDECAR_IMAGE},
            ],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_revision_backends_come_from_ready_pods_the_runner_runs() -> None:
    pods = [
        revision_pod("svc-00001-b", "svc-00001"),
        revision_pod("svc-00001-a", "svc-00001"),
        revision_pod("svc-00002-a", "svc-00002"),  # not started by the runner yet
        revision_pod("svc-00003-a", "svc-00003", ready=False),
        revision_pod("other-a", "other", image="kwok-only:1"),
    ]
    state = [
        {"namespace": "ns", "name": "svc-00001-a", "ip": "127.9.0.1", "port": 9080, "alive": True},
        {"namespace": "ns", "name": "svc-00001-b", "ip": "127.9.0.2", "port": 9080, "alive": True},
        {"namespace": "ns", "name": "svc-00003-a", "ip": "127.9.0.3", "port": 9080, "alive": True},
    ]
    backends, runnable = knative.revision_backends(pods, state)
    assert backends == {("ns", "svc-00001"): Backend("127.9.0.1", 9080)}
    assert runnable == {("ns", "svc-00001"), ("ns", "svc-00002")}


async def test_forwarder_passes_bytes_both_ways_and_cuts_connections_when_stopped() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = upstream.sockets[0].getsockname()[:2]
    forwarder = Forwarder(("127.0.0.1", 0), target)
    await forwarder.start()
    assert forwarder._server is not None
    listen = forwarder._server.sockets[0].getsockname()[:2]
    try:
        reader, writer = await asyncio.open_connection(*listen)
        writer.write(b"PRI * HTTP/2.0\r\n")
        await writer.drain()
        assert await reader.readexactly(16) == b"PRI * HTTP/2.0\r\n"
        writer.write(b"h2c")
        await writer.drain()
        assert await reader.readexactly(3) == b"H2C"
        await forwarder.stop()
        with contextlib.suppress(ConnectionResetError):  # a reset is a cut too
            assert await asyncio.wait_for(reader.read(), 5) == b"", "the open connection is cut"
        writer.close()
    finally:
        await forwarder.stop()
        upstream.close()
        await upstream.wait_closed()
