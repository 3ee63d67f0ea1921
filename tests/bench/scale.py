"""Benchmark: N RestateDeployments applied at once, then all rolled to v2 (the light benchmark image).

For each N (default 100), on a fresh stack: apply N RestateDeployments of `images.BENCH_IMAGE`
(one shared process serves every pod, each as its own Restate service, so registrations and drains
are real), time until all are Ready; then roll all of them to v2 and time until all are Ready again
and every v1 deployment is gone from Restate. A phase still unfinished after `--phase-seconds` is
recorded as it stands: how many were Ready, and what it cost so far. Per resource and phase:
reconcile invocations (from Restate's `sys_invocation`, and the services' own pass counter),
apiserver requests (the apiserver's `apiserver_request_total`, all clients: pod runner,
controllers and kwok included).
Also the operator's CPU and peak RSS, and the bootstrap restate-server's CPU, RSS and disk.
The watcher resyncs hourly here (`RESYNC_SECONDS`; 300 in production), so no resync window opens
within a phase and the figures are what the changes cost; `idle_cost` measures the resyncs.
Heavy for 2 shared cores: compare runs of the same machine only.

    .venv/bin/python -m tests.bench.scale [--counts 100 250 500] [--phase-seconds 900]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from typing import Any

import httpx

from devstack import control_plane
from devstack.operator import Operator
from devstack.stack import Stack
from tests import light
from tests.bench.common import (
    Api,
    ReadyWatch,
    cpu_by_group,
    cpu_seconds,
    disk_mb,
    record,
    rss_mb,
    running_stack_and_operator,
)
from tests.bench.operator_cost import RSDS, counter_total, rsd_path

NAMESPACE = "scale"
RESYNC_SECONDS = 3600


def apiserver_requests(api: Api) -> tuple[float, float]:
    """(all requests, writes) the apiserver has served so far."""
    total = writes = 0.0
    for line in api.http.get("/metrics").text.splitlines():
        if line.startswith("apiserver_request_total{"):
            value = float(line.rpartition(" ")[2])
            total += value
            if any(f'verb="{verb}"' in line for verb in ("POST", "PUT", "PATCH", "DELETE", "APPLY")):
                writes += value
    return total, writes


def snapshot(stack: Stack, operator: Operator, api: Api) -> dict[str, Any]:
    assert operator.services is not None
    assert stack.restate.process is not None
    total, writes = apiserver_requests(api)
    passes = counter_total(operator.metrics(operator.services_probes_port), "controller_runtime_reconcile_total")
    invocations, scheduled = light.reconcile_invocations(stack.restate.admin_url)
    return {
        "at": time.monotonic(),
        "operator_cpu": cpu_seconds(operator.services.pid) + sum(cpu_seconds(w.pid) for w in operator.watchers),
        "restate_cpu": cpu_seconds(stack.restate.process.pid),
        "invocations": invocations,
        "scheduled": scheduled,
        "passes": passes,
        "requests": total,
        "writes": writes,
        "cpu_by_group": cpu_by_group(),
    }


def phase(label: str, n: int, ready: int, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    figures = {
        "seconds": after["at"] - before["at"],
        "ready": ready,
        "invocations_per_resource": (after["invocations"] - before["invocations"]) / n,
        "scheduled_per_resource": (after["scheduled"] - before["scheduled"]) / n,
        "passes_per_resource": (after["passes"] - before["passes"]) / n,
        "requests_per_resource": (after["requests"] - before["requests"]) / n,
        "writes_per_resource": (after["writes"] - before["writes"]) / n,
        "operator_cpu_s": after["operator_cpu"] - before["operator_cpu"],
        "restate_cpu_s": after["restate_cpu"] - before["restate_cpu"],
        "cpu_by_group_s": {
            group: seconds - before["cpu_by_group"].get(group, 0.0) for group, seconds in after["cpu_by_group"].items()
        },
    }
    print(
        f"{label} of {n}: {'all' if ready == n else ready} Ready in {figures['seconds']:.1f} s; per resource: "
        f"{figures['invocations_per_resource']:.2f} reconcile invocations "
        f"(of which {figures['scheduled_per_resource']:+.2f} wake-ups still scheduled; "
        f"{figures['passes_per_resource']:.2f} passes run), "
        f"{figures['requests_per_resource']:.1f} apiserver requests ({figures['writes_per_resource']:.1f} writes); "
        f"operator CPU {figures['operator_cpu_s']:.1f} s, restate-server CPU {figures['restate_cpu_s']:.1f} s"
    )
    busiest = sorted(figures["cpu_by_group_s"].items(), key=lambda item: -item[1])
    print(
        f"  the machine's CPU in it ({sum(figures['cpu_by_group_s'].values()):.0f} s of "
        f"{(os.cpu_count() or 1) * figures['seconds']:.0f} core-seconds): "
        + ", ".join(f"{g} {s:.1f} s" for g, s in busiest)
    )
    return figures


def make_room(stack: Stack, pods: int) -> None:
    """Enough simulated nodes for `pods` (each holds 110, `control_plane.kwok_node`): past 220
    pods the stack's two nodes leave the rest Pending, and those resources never become Ready."""
    cp = stack.control_plane
    capacity = int(str(control_plane.kwok_node("probe")["status"]["capacity"]["pods"]))  # type: ignore[index]
    for i in range(cp.nodes, math.ceil(pods / capacity)):
        cp.kubectl("apply", "-f", "-", input=json.dumps(control_plane.kwok_node(f"kwok-node-{i}")))


def deployments(admin: str) -> int:
    return len(httpx.get(f"{admin}/deployments").json()["deployments"])


def ready_times(watch: ReadyWatch, applied: list[dict[str, Any]], since: float, deadline: float) -> list[float]:
    """Seconds from `since` to each resource's Ready, for those Ready before `deadline` (monotonic):
    a phase that does not converge still says how far it got."""
    times = []
    for i, obj in enumerate(applied):
        with contextlib.suppress(TimeoutError):
            left = max(0.0, deadline - time.monotonic())
            times.append(watch.wait(f"b{i}", obj["metadata"]["generation"], NAMESPACE, timeout=left) - since)
    return times


def one_scale(n: int, phase_seconds: float) -> dict[str, Any]:
    with running_stack_and_operator(watcher_env={"RESYNC_SECONDS": str(RESYNC_SECONDS)}) as (stack, operator):
        api, admin = Api(stack), stack.restate.admin_url
        api.create_namespace(NAMESPACE)
        make_room(stack, 2 * n + 10)  # a rollout runs both versions' pods at once
        watch = ReadyWatch(stack, RSDS)
        ready_at: dict[str, list[float]] = {}
        try:
            start = snapshot(stack, operator, api)
            generations = [
                api.apply(rsd_path(NAMESPACE, f"b{i}"), light.rsd(i, "v1", admin, NAMESPACE)) for i in range(n)
            ]
            ready_at["create"] = ready_times(watch, generations, start["at"], start["at"] + phase_seconds)
            created = snapshot(stack, operator, api)
            base = deployments(admin) - n  # the operator's own
            generations = [
                api.apply(rsd_path(NAMESPACE, f"b{i}"), light.rsd(i, "v2", admin, NAMESPACE)) for i in range(n)
            ]
            deadline = created["at"] + phase_seconds
            ready_at["rollout"] = ready_times(watch, generations, created["at"], deadline)
            while deployments(admin) > base + n and time.monotonic() < deadline:  # every v1 deregistered
                time.sleep(0.2)
            rolled = snapshot(stack, operator, api)
        finally:
            watch.close()
        assert operator.services is not None
        assert stack.restate.process is not None
        figures: dict[str, Any] = {
            "count": n,
            "create": phase("create", n, len(ready_at["create"]), start, created),
            "rollout": phase("rollout to v2 (v1 deregistered)", n, len(ready_at["rollout"]), created, rolled),
            "ready_at_s": ready_at,
            "operator_peak_rss_mb": {
                "services": rss_mb(operator.services.pid, "VmHWM"),
                "watcher": sum(rss_mb(w.pid, "VmHWM") for w in operator.watchers),
            },
            "restate_peak_rss_mb": rss_mb(stack.restate.process.pid, "VmHWM"),
            "restate_disk_mb": disk_mb(stack.restate.work),
        }
        print(
            f"{n}: operator peak RSS services {figures['operator_peak_rss_mb']['services']:.0f} MB, watcher "
            f"{figures['operator_peak_rss_mb']['watcher']:.0f} MB; restate-server peak RSS "
            f"{figures['restate_peak_rss_mb']:.0f} MB, disk {figures['restate_disk_mb']:.0f} MB"
        )
        return figures


def main(counts: list[int], phase_seconds: float) -> None:
    results: list[dict[str, Any]] = []
    for n in counts:
        results.append(one_scale(n, phase_seconds))
        record("scale", results=results)  # after each N: a run stopped later keeps what it measured
    print(
        f"rerun: .venv/bin/python -m tests.bench.scale --counts {' '.join(map(str, counts))} "
        f"--phase-seconds {phase_seconds:.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100])
    parser.add_argument("--phase-seconds", type=float, default=900.0, help="give up on a phase after this long")
    args = parser.parse_args()
    main(args.counts, args.phase_seconds)
