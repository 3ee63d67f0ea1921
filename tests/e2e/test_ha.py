"""High availability the Restate way: the chart's HA values, and any one pod of each kind killed mid-rollout.

`helm install -f examples/values-ha.yaml` on a control plane of its own: the bootstrap Restate is
three real restate-server nodes (one cluster, provisioned once by the chart's Job), with two
services and two watcher replicas, all run by the pod runner. No leader election anywhere: the
watchers both forward (idempotency keys), Restate retries an invocation on the other services
replica, and a partition's follower takes over from a dead node.

A kill is a crash: SIGKILL of the pod's process, which the pod runner restarts as a kubelet
restarts a container (the pod itself stays). Each scenario holds an invocation on v1, rolls to v2,
and while v1 drains kills its targets one after another, each once the operator answers again.
Then the invariants of tests/e2e/invariants.py: v1 kept its registration and pods while its
invocation ran, the invocation finished on v1, the resource is Ready and routed to v2, v2 was
registered once, and v1 drained afterwards. Per kill, two times are reported, both from the kill:
until a reconciler answers through the ingress again (`operable_s`: the `restate` Service names a
serving node, and Restate reaches a live services replica), and until the pod's own process
answers again (`restarted_s`). A killed Restate node must not be where the Service points meanwhile.

`make test` runs the kill of one pod of each kind in a row; `make chaos` (marker `chaos`) adds one
scenario per kind of pod, and a Restate node frozen (SIGSTOP) for 40 s, which is not restarted: the
cluster must serve without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from devstack import procs, tools
from devstack.chart import RELEASE, ChartInstall
from devstack.restate_server import private_hosts_argv
from devstack.stack import Stack
from tests.e2e.invariants import DrainWatch
from tests.e2e.test_helm_install import rsd
from tests.e2e.versioned import namespace_for, output, phases, pinned, reconciler_url, wait_ready, whoami
from tests.helpers import apply

pytestmark = pytest.mark.e2e

HA_VALUES = tools.REPO / "examples" / "values-ha.yaml"
HOLD_SECONDS = 45.0  # longer than the kills take, so v1 drains through all of them
FREEZE_SECONDS = 40.0  # a hung node: longer than its probe takes to fail (3 x 5 s) and its partitions to fail over
RECOVERY_BOUND_SECONDS = 120.0  # generous: the machine is shared; docs/reliability.md has the measured times
NODES = ["restate-0", "restate-1", "restate-2"]


class _ChartRestate:
    """The bootstrap Restate as the e2e helpers address it: by its Service, wherever that points now."""

    def __init__(self, release: ChartInstall) -> None:
        self._release = release

    @property
    def admin_url(self) -> str:
        return self._release.admin_url

    @property
    def ingress_url(self) -> str:
        return self._release.ingress_url


@dataclass
class _ChartStack:
    """What tests/e2e/versioned.py and invariants.py read of a Stack, for the chart's Restate."""

    release: ChartInstall

    @property
    def control_plane(self) -> Any:
        return self.release.stack.control_plane

    @property
    def restate(self) -> _ChartRestate:
        return _ChartRestate(self.release)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartInstall]:
    stack = Stack(Path(tmp_path_factory.mktemp("ha-stack")), standalone_restate=False)
    stack.start()
    try:
        installed = ChartInstall(stack)
        installed.install(files=[HA_VALUES], wait=False)
        installed.wait_ready(timeout=180)
        yield installed
    finally:
        stack.stop()


def view(release: ChartInstall) -> Stack:
    return cast(Stack, _ChartStack(release))


def pod(release: ChartInstall, name: str) -> dict[str, Any]:
    return next(p for p in release.pods() if p["name"] == name)


def pods_of(release: ChartInstall, component: str) -> list[str]:
    names = sorted(p["name"] for p in release.pods())
    if component == "restate":
        return [n for n in names if n in NODES]
    if component == "watcher":
        return [n for n in names if n.startswith(f"{RELEASE}-watcher-")]
    return [n for n in names if n.startswith(f"{RELEASE}-") and not n.startswith(f"{RELEASE}-watcher-")]


def node_deployments(release: ChartInstall, name: str) -> set[str]:
    """The deployment ids one node's admin API lists (every node reads the one replicated metadata)."""
    listed = httpx.get(f"http://{pod(release, name)['ip']}:9070/deployments", timeout=10).json()["deployments"]
    return {d["id"] for d in listed}


def restatectl(release: ChartInstall, *args: str) -> str:
    """restatectl against restate-0, resolving the nodes' names through the stack's hosts file."""
    address = f"http://{pod(release, 'restate-0')['ip']}:5122"
    argv = private_hosts_argv(release.stack.hosts_file, [str(tools.restatectl_bin()), *args, "--address", address])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_three_restate_nodes_form_one_provisioned_cluster(release: ChartInstall) -> None:
    assert pods_of(release, "restate") == NODES
    assert len(pods_of(release, "services")) == 2
    assert len(pods_of(release, "watcher")) == 2
    # one cluster: every node's admin API lists the same registrations (the services' own)
    listed = [node_deployments(release, name) for name in NODES]
    assert listed[0], "the services registered themselves"
    assert listed == [listed[0]] * 3
    # the replicated metadata server runs on every node, all three members of one Raft group
    procs.wait_until(
        "every node a member of one metadata Raft group",
        lambda: restatectl(release, "metadata-server", "list-servers").count("[N1,N2,N3]") == 3,
        timeout=60,
    )


def kill(release: ChartInstall, name: str) -> dict[str, Any]:
    """SIGKILL the pod's process; measure until the operator answers again and until the runner restarted it.

    Also where the `restate` Service pointed meanwhile: off a dead node, onto a serving one."""
    before = pod(release, name)
    resolved: set[str | None] = set()
    os.kill(before["pid"], signal.SIGKILL)
    killed = time.monotonic()

    def answers() -> bool:
        resolved.add(release.host("restate"))
        return operable(release)

    procs.wait_until("a reconciler answers", answers, timeout=RECOVERY_BOUND_SECONDS)
    operable_s = time.monotonic() - killed

    def restarted() -> bool:
        resolved.add(release.host("restate"))
        now = pod(release, name)
        return bool(now["pid"] != before["pid"] and now["alive"] and procs.http_ok(probe_url(name, now["ip"])))

    procs.wait_until(f"{name} restarted", restarted, timeout=RECOVERY_BOUND_SECONDS)
    result = {"pod": name, "operable_s": round(operable_s, 2), "restarted_s": round(time.monotonic() - killed, 2)}
    if name in NODES:
        result["restate_service_moved"] = bool(resolved - {before["ip"], None})
    return result


def freeze(release: ChartInstall, name: str) -> dict[str, Any]:
    """SIGSTOP a node's process for FREEZE_SECONDS: a node that hangs and is not restarted.

    The operator must answer again before the node resumes: its probe fails, the `restate` Service
    moves to another node, and the partitions it led fail over to their followers."""
    before = pod(release, name)
    os.kill(before["pid"], signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        procs.wait_until("a reconciler answers while a node hangs", lambda: operable(release), timeout=FREEZE_SECONDS)
        operable_s = time.monotonic() - frozen
        assert release.host("restate") != before["ip"], "the restate Service names a node that serves"
        time.sleep(max(0.0, FREEZE_SECONDS - operable_s))
    finally:
        os.kill(before["pid"], signal.SIGCONT)
    resumed = time.monotonic()
    procs.wait_until(f"{name} serves again", lambda: procs.http_ok(probe_url(name, before["ip"])), timeout=60)
    return {"pod": name, "operable_s": round(operable_s, 2), "resumed_s": round(time.monotonic() - resumed, 2)}


def probe_url(name: str, ip: str) -> str:
    if name in NODES:
        return f"http://{ip}:8080/restate/health"
    if name.startswith(f"{RELEASE}-watcher-"):
        return f"http://{ip}:8082/readyz"
    return f"http://{ip}:8081/readyz"  # a services pod


def operable(release: ChartInstall) -> bool:
    """A reconciler's shared `status` handler answers through the ingress: Restate and a services replica serve."""
    try:
        url = reconciler_url(view(release), "probe", "status", name=uuid.uuid4().hex[:6])
        return httpx.post(url, json=None, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def namespace(release: ChartInstall) -> Iterator[str]:
    """A namespace for the scenario's RestateDeployment, removed afterwards with its registrations."""
    with namespace_for(view(release), "ha", timeout=120) as name:
        yield name


SCENARIOS = (
    [
        pytest.param(("restate", "services", "watcher"), id="one-of-each-in-turn"),
    ]
    + [
        pytest.param((component,), id=f"{component}-only", marks=pytest.mark.chaos)
        for component in ("restate", "services", "watcher")
    ]
    + [pytest.param(("restate-frozen",), id="restate-frozen", marks=pytest.mark.chaos)]
)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("components", SCENARIOS)
def test_killing_one_pod_of_each_kind_loses_nothing_and_the_rollout_carries_on(
    release: ChartInstall, namespace: str, components: tuple[str, ...]
) -> None:
    stack = view(release)
    apply(stack, rsd(namespace, "v1"))
    v1 = latest(wait_ready(stack, namespace, timeout=120))
    held = httpx.post(f"{release.ingress_url}/Versioned/hold/send", json=HOLD_SECONDS, timeout=30).json()[
        "invocationId"
    ]
    procs.wait_until("the invocation is pinned to v1", lambda: pinned(stack, held), timeout=30)
    kills = []
    with DrainWatch(stack, namespace, v1, held) as watch:
        apply(stack, rsd(namespace, "v2"))
        procs.wait_until("v1 Draining", lambda: phases(stack, namespace).get(v1) == "Draining", timeout=90)
        for component in components:
            if component == "restate-frozen":
                kills.append({"component": component, **freeze(release, target(release, "restate"))})
                continue
            kills.append({"component": component, **kill(release, target(release, component))})
            if component == "restate":
                assert kills[-1]["restate_service_moved"], "the restate Service moved to a serving node"
        obj = wait_ready(stack, namespace, timeout=RECOVERY_BOUND_SECONDS)
        v2 = latest(obj)
        procs.wait_until("Restate routes to v2", lambda: whoami(stack) == "v2", timeout=RECOVERY_BOUND_SECONDS)
        procs.wait_until("the invocation finished", lambda: output(stack, held) is not None, timeout=120)
    assert watch.violations == []
    assert output(stack, held) == "started on v1, finished on v1"
    assert v2 != v1
    uris = [d["uri"] for d in httpx.get(f"{release.admin_url}/deployments", timeout=30).json()["deployments"]]
    assert len([u for u in uris if f"/{v2}.{namespace}." in u]) == 1, f"v2 registered once: {uris}"
    procs.wait_until("v1 drained afterwards", lambda: phases(stack, namespace).get(v1) == "Drained", timeout=120)
    print(f"ha: {json.dumps({'components': components, 'kills': kills, 'observations': watch.observations})}")
    if path := os.environ.get("CHAOS_RESULTS"):  # make chaos: tests/chaos_report.py tabulates them
        with open(path, "a") as out:
            for k in kills:
                out.write(json.dumps(chaos_line(k, alone=len(kills) == 1)) + "\n")


def chaos_line(fault: dict[str, Any], *, alone: bool) -> dict[str, Any]:
    """One row for tests/chaos_report.py: the fault, its window, the time until the operator answered."""
    if fault["component"] == "restate-frozen":
        return {"scenario": "HA: SIGSTOP restate pod", "window_s": FREEZE_SECONDS, "recovery_s": fault["operable_s"]}
    scenario = f"HA: SIGKILL {fault['component']} pod ({'alone' if alone else 'one of each in turn'})"
    return {"scenario": scenario, "window_s": 0, "recovery_s": fault["operable_s"]}


def target(release: ChartInstall, component: str) -> str:
    """The pod to kill: for Restate the node the `restate` Service points to (the operator's way in)."""
    if component == "restate":
        ip = release.host("restate")
        return str(next(p["name"] for p in release.pods() if p["ip"] == ip))
    return pods_of(release, component)[0]


def latest(obj: dict[str, Any]) -> str:
    return str(next(v["name"] for v in obj["status"]["versions"] if v["phase"] == "Latest"))
