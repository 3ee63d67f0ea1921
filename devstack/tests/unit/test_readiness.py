"""Honest readiness: which probe the pod runner checks, what it writes, and kwok's stages for it."""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path
from typing import Any

import pytest

from devstack import images
from devstack.control_plane import honest_stages
from devstack.pod_runner import Probe, answers, plan_pod, readiness_probe, ready_status

PORTS = [{"name": "probes", "container_port": 8081}, {"name": "restate", "container_port": 9080}]


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(None, Probe(9080), id="none-is-the-port"),
        pytest.param({"http_get": {"path": "/readyz", "port": "probes"}}, Probe(8081, "/readyz"), id="named-port"),
        pytest.param({"http_get": {"port": 9090}}, Probe(9090, "/"), id="http-default-path"),
        pytest.param(
            {"http_get": {"path": "/h", "port": 8443, "scheme": "HTTPS"}}, Probe(8443, "/h", True), id="https"
        ),
        pytest.param({"tcp_socket": {"port": "restate"}}, Probe(9080), id="tcp"),
        pytest.param({"_exec": {"command": ["true"]}}, Probe(9080), id="exec-is-the-port"),
    ],
)
def test_readiness_probe_is_what_a_kubelet_would_check(probe: dict[str, Any] | None, expected: Probe) -> None:
    assert readiness_probe({"ports": PORTS, "readiness_probe": probe}, 9080) == expected


def test_ready_status_sets_both_conditions_and_every_container() -> None:
    pod = {"spec": {"containers": [{"name": "user-container", "image": "u"}, {"name": "queue-proxy", "image": "q"}]}}
    status = ready_status(pod, False, "2026-12-01T00:00:00Z")["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "False", "ContainersReady": "False"}
    assert [(c["name"], c["ready"]) for c in status["containerStatuses"]] == [
        ("user-container", False),
        ("queue-proxy", False),
    ]
    assert all("running" in c["state"] for c in status["containerStatuses"]), "whole entries: kubectl shows them"


async def test_answers_follows_the_process_http_status() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        code = 200 if b"/readyz" in line else 503
        writer.write(f"HTTP/1.0 {code} X\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await answers(Probe(port, "/readyz"), "127.0.0.1")
        assert not await answers(Probe(port, "/other"), "127.0.0.1")
        assert await answers(Probe(port), "127.0.0.1")
    assert not await answers(Probe(port), "127.0.0.1")  # nothing listens any more


def test_runs_process_names_exactly_the_images_the_runner_runs() -> None:
    assert images.runs_process(images.HELLO_IMAGE)
    assert images.runs_process(f"{images.OPERATOR_IMAGE}:0.1.0")
    assert not images.runs_process(next(iter(images.RESTATE_IMAGES))), "restate-server pods keep kwok's readiness"
    assert not images.runs_process("alpine:3.21")
    assert not images.runs_process(f"{images.VERSIONED_IMAGE}:unknown")


CACHED = sorted(glob.glob(str(Path.home() / ".cache/restate-operator/k8s-test-bins/*/kwok-stages.yaml")))


@pytest.mark.skipif(not CACHED, reason="the control plane is not built yet (make tools)")
def test_honest_stages_leave_only_the_runners_pods_not_ready(tmp_path: Path) -> None:
    source = Path(CACHED[-1])
    text = honest_stages(source, tmp_path / "stages.yaml").read_text()
    stage = text[text.index("name: pod-ready") :].split("\n---\n")[0]
    assert stage.count('{{ if $runs }}"False"{{ else }}"True"{{ end }}') == 2  # Ready, ContainersReady
    assert images.HELLO_IMAGE in stage
    assert text.count("\n---\n") == source.read_text().count("\n---\n")  # every other stage kept


def test_bench_image_pods_share_the_bench_server_and_keep_their_service_name() -> None:
    pod = {
        "metadata": {"name": "b0-x", "namespace": "scale", "uid": "u0", "labels": {}},
        "spec": {
            "node_name": "kwok-node-0",
            "containers": [
                {"name": "svc", "image": f"{images.BENCH_IMAGE}:v2", "env": [{"name": "SERVICE_NAME", "value": "B0"}]}
            ],
        },
        "status": {"phase": "Running"},
    }
    plan = plan_pod(pod, images.IMAGES, images.RESTATE_IMAGES)
    assert plan is not None
    assert plan.shared
    assert plan.port == 9080
    assert plan.env["SERVICE_NAME"] == "B0"
    assert images.runs_process(f"{images.BENCH_IMAGE}:v2")
