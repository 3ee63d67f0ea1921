"""Benchmark: what one change costs the operator: latency, CPU, reconcile passes, admin calls, RSS.

Starts its own stack with the operator, then creates N RestateDeployments of examples/versioned
one after another (apply -> Ready) and rolls one of them N times, each time to a new version (v2
and v1 in turn; apply -> Ready with the new version latest). Ready is seen through a watch,
applies go through one kept-alive client.
CPU is the services' and the watcher's process trees (user + system, from /proc) over all 2N
changes and the drains they start, divided by 2N; passes and admin calls come from the services'
own metrics, reconcile invocations (wake-ups included) from Restate's `sys_invocation`, each also
per create and per rollout (a rollout's share includes the drains, which end after the settle).
On a shared 2-core machine the latencies are noisy: repeat and compare medians.
With `--light` the resources are of the light benchmark image (`tests/light.py`, drainDelaySeconds
0), whose pods one running process serves: no SDK process start in the figures (raw figures in
`.bench/operator_cost_light.json`).

    .venv/bin/python -m tests.bench.operator_cost [--rounds 20] [--light]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from devstack.operator import Operator
from tests import light
from tests.bench.common import (
    Api,
    ReadyWatch,
    cpu_seconds,
    percentile,
    record,
    report,
    rss_mb,
    running_stack_and_operator,
)
from tests.bench.rollout_latency import resource

RSDS = "/apis/restate.dev/v1beta1/restatedeployments"
SETTLE_SECONDS = 5.0  # after the last change: the last drain and its passes are part of the cost


def rsd_path(namespace: str, name: str) -> str:
    return f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments/{name}"


def counter_total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def timed_change(api: Api, watch: ReadyWatch, obj: dict[str, Any]) -> float:
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    started = time.monotonic()
    generation = api.apply(rsd_path(namespace, name), obj)["metadata"]["generation"]
    return watch.wait(name, generation, namespace) - started


def created(i: int, admin: str, light_image: bool) -> dict[str, Any]:
    """The i-th resource to create (i < 0: the warm-up)."""
    if light_image:
        return light.rsd(i + 1, "v1", admin, "bench")
    return resource(f"svc{i}" if i >= 0 else "warmup", "bench", "v1", admin)


def rollout(i: int, admin: str, light_image: bool) -> dict[str, Any]:
    """The first resource's i-th rollout: v2 and v1 in turn, each a new template (a new version with new pods)."""
    version = ("v2", "v1")[i % 2]
    obj = light.rsd(1, version, admin, "bench") if light_image else resource("svc0", "bench", version, admin)
    obj["spec"]["template"]["metadata"]["annotations"] = {"bench/round": str(i)}
    return obj


def snapshot(operator: Operator) -> dict[str, float]:
    assert operator.services is not None
    samples = operator.metrics(operator.services_probes_port)
    return {
        "invocations": light.reconcile_invocations(operator.stack.restate.admin_url)[0],
        "services_cpu": cpu_seconds(operator.services.pid),
        "watcher_cpu": sum(cpu_seconds(w.pid) for w in operator.watchers),
        "passes": counter_total(samples, "controller_runtime_reconcile_total"),
        "admin_calls": counter_total(samples, "restate_operator_admin_calls_total"),
        "kube_writes": counter_total(samples, "restate_operator_kube_writes_total"),
    }


def main(rounds: int, light_image: bool) -> None:
    with running_stack_and_operator() as (stack, operator):
        api, admin = Api(stack), stack.restate.admin_url
        api.create_namespace("bench")
        watch = ReadyWatch(stack, RSDS)
        try:
            timed_change(api, watch, created(-1, admin, light_image))  # imports, connections
            before = snapshot(operator)
            creates = [timed_change(api, watch, created(i, admin, light_image)) for i in range(rounds)]
            time.sleep(SETTLE_SECONDS)  # the creates' own late passes and wake-ups belong to them
            middle = snapshot(operator)
            rolled = [timed_change(api, watch, rollout(i, admin, light_image)) for i in range(rounds)]
            time.sleep(SETTLE_SECONDS)
            after = snapshot(operator)
        finally:
            watch.close()
        assert operator.services is not None
        changes = 2 * rounds
        per = {k: (after[k] - before[k]) / changes for k in before}
        per_create = {k: (middle[k] - before[k]) / rounds for k in ("passes", "invocations", "kube_writes")}
        per_rollout = {k: (after[k] - middle[k]) / rounds for k in ("passes", "invocations", "kube_writes")}
        report("create apply->Ready", creates)
        report("rollout apply->Ready (new version latest)", rolled)
        print(
            f"per change over {changes} changes: services CPU {per['services_cpu'] * 1000:.0f} ms, "
            f"watcher CPU {per['watcher_cpu'] * 1000:.0f} ms, reconcile passes {per['passes']:.2f}, "
            f"admin calls {per['admin_calls']:.2f}, kube writes {per['kube_writes']:.2f}"
        )
        for label, figures in (("create", per_create), ("rollout", per_rollout)):
            print(
                f"per {label}: reconcile passes {figures['passes']:.2f}, reconcile invocations "
                f"{figures['invocations']:.2f} (wake-ups included), kube writes {figures['kube_writes']:.2f}"
            )
        services_rss = rss_mb(operator.services.pid)
        watcher_rss = sum(rss_mb(w.pid) for w in operator.watchers)
        print(
            f"RSS now: services {services_rss:.0f} MB, watcher {watcher_rss:.0f} MB "
            f"(peak {rss_mb(operator.services.pid, 'VmHWM'):.0f} / "
            f"{sum(rss_mb(w.pid, 'VmHWM') for w in operator.watchers):.0f} MB)"
        )
        record(
            "operator_cost_light" if light_image else "operator_cost",
            created_s=creates,
            rolled_s=rolled,
            per_change=per,
            per_create=per_create,
            per_rollout=per_rollout,
            rss_mb={"services": services_rss, "watcher": watcher_rss},
        )
        print(f"p50 create {percentile([s * 1000 for s in creates], 0.5):.0f} ms (goal <= 1100)")
        print("rerun: .venv/bin/python -m tests.bench.operator_cost --rounds", rounds, "--light" if light_image else "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--light",
        action="store_true",
        help="the light benchmark image: its pods are served by a process already running, so the "
        "figures leave out an SDK process starting (as kwok's instant readiness did for upstream's)",
    )
    args = parser.parse_args()
    main(args.rounds, args.light)
