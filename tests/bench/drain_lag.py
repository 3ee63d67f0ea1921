"""Benchmark: drain lag, from the last pinned invocation finishing to the old version's deregistration.

One RestateDeployment of examples/versioned with `drainDelaySeconds: D`. Each round starts an
invocation of `Versioned/hold` (it sleeps durably for H seconds) on the current version, rolls out
a new version (a new template), waits for the invocation to finish (its HTTP response, taken as
the moment it completed) and then polls Restate's admin API every 20 ms until the old version's
deployment is gone. Lag = deregistered - finished - D: what the operator adds beyond the delay the
user asked for (the goal is at most 1 s at p50). Noisy on a shared 2-core machine: repeat.

    .venv/bin/python -m tests.bench.drain_lag [--rounds 20] [--drain-delay 2] [--hold 2]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import httpx

from tests.bench.common import Api, ReadyWatch, percentile, record, running_stack_and_operator
from tests.bench.operator_cost import RSDS, rsd_path
from tests.bench.rollout_latency import resource

NAME, NAMESPACE = "drain", "bench"


def version_of(i: int, admin: str, drain_delay: int) -> dict[str, Any]:
    spec = resource(NAME, NAMESPACE, ("v1", "v2")[i % 2], admin)
    spec["spec"]["restate"]["drainDelaySeconds"] = drain_delay
    spec["spec"]["revisionHistoryLimit"] = 2
    spec["spec"]["template"]["metadata"]["annotations"] = {"bench/round": str(i)}
    return spec


def hold_on(restate: httpx.Client, url: str, seconds: float, finished: list[float]) -> None:
    """Call `hold` and note when its invocation finished (the response arrived)."""
    restate.post(url, json=seconds).raise_for_status()
    finished.append(time.monotonic())


def latest_deployment(api: Api) -> str:
    versions = api.get(rsd_path(NAMESPACE, NAME))["status"]["versions"]
    return str(next(v["deploymentId"] for v in versions if v["phase"] == "Latest"))


def main(rounds: int, drain_delay: int, hold: float) -> None:
    with running_stack_and_operator() as (stack, _):
        api, admin, ingress = Api(stack), stack.restate.admin_url, stack.restate.ingress_url
        api.create_namespace(NAMESPACE)
        watch = ReadyWatch(stack, RSDS)
        restate = httpx.Client(timeout=60.0)
        lags = []
        try:
            generation = api.apply(rsd_path(NAMESPACE, NAME), version_of(0, admin, drain_delay))["metadata"]
            watch.wait(NAME, generation["generation"], NAMESPACE)
            for i in range(1, rounds + 1):
                old = latest_deployment(api)
                finished: list[float] = []
                caller = threading.Thread(target=hold_on, args=(restate, f"{ingress}/Versioned/hold", hold, finished))
                caller.start()
                time.sleep(0.3)  # the invocation is running on the old version
                applied = api.apply(rsd_path(NAMESPACE, NAME), version_of(i, admin, drain_delay))
                watch.wait(NAME, applied["metadata"]["generation"], NAMESPACE)
                caller.join()
                while restate.get(f"{admin}/deployments/{old}").status_code != 404:
                    time.sleep(0.02)
                lags.append(time.monotonic() - finished[0] - drain_delay)
        finally:
            watch.close()
            restate.close()
        record("drain_lag", lag_s=lags, drain_delay_s=drain_delay, hold_s=hold)
        ms = [lag * 1000 for lag in lags]
        print(
            f"drain lag beyond drainDelaySeconds={drain_delay} over {rounds} rollouts (ms): "
            f"p50 {percentile(ms, 0.5):.0f}  p95 {percentile(ms, 0.95):.0f}  min {min(ms):.0f}  max {max(ms):.0f}"
        )
        print(f"rerun: .venv/bin/python -m tests.bench.drain_lag --rounds {rounds} --drain-delay {drain_delay}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--drain-delay", type=int, default=2)
    parser.add_argument("--hold", type=float, default=2.0)
    args = parser.parse_args()
    main(args.rounds, args.drain_delay, args.hold)
