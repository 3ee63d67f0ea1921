"""Benchmark: apply -> reconciled latency of the reconcile core (not a test; prints numbers).

Starts its own stack (control plane, restate-server, services, watcher), then for N rounds edits a
RestateCloudEnvironment's spec and measures the time until its status shows Ready=True with
observedGeneration equal to the new generation, polling the apiserver every 10 ms.

    .venv/bin/python -m tests.bench.reconcile_latency [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.stack.operator import OPERATOR_NAMESPACE, Operator
from tests.stack.stack import Stack

ENVIRONMENT = {
    "apiVersion": "restate.dev/v1beta1",
    "kind": "RestateCloudEnvironment",
    "metadata": {"name": "bench"},
    "spec": {
        "environmentId": "env_bench",
        "region": "r0",
        "signingPublicKey": "publickeyv1_bench",
        "authentication": {"secret": {"name": "bench-token", "key": "token"}},
    },
}


def reconciled(stack: Stack, generation: int) -> bool:
    obj = json.loads(stack.control_plane.kubectl("get", "rce", "bench", "-o", "json"))
    ready: dict[str, object] = next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {}
    )
    return ready.get("status") == "True" and ready.get("observedGeneration") == generation


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work))
        operator = Operator(stack)
        try:
            stack.start()
            operator.start()
            cp = stack.control_plane
            cp.kubectl("create", "secret", "generic", "bench-token", "-n", OPERATOR_NAMESPACE, "--from-literal=token=x")
            cp.kubectl("apply", "-f", "-", input=json.dumps(ENVIRONMENT))
            while not reconciled(stack, 1):
                time.sleep(0.05)
            latencies = []
            for i in range(1, rounds + 1):
                started = time.monotonic()
                out = cp.kubectl(
                    "patch",
                    "rce",
                    "bench",
                    "--type=merge",
                    "-o",
                    "json",
                    "-p",
                    json.dumps({"spec": {"region": f"r{i}"}}),
                )
                generation = json.loads(out)["metadata"]["generation"]
                while not reconciled(stack, generation):
                    time.sleep(0.01)
                latencies.append(time.monotonic() - started)
        finally:
            operator.stop()
            stack.stop()
    ms = [x * 1000 for x in latencies]
    print(
        f"apply->reconciled over {rounds} spec edits (ms): p50 {percentile(ms, 0.5):.0f}  "
        f"p95 {percentile(ms, 0.95):.0f}  min {min(ms):.0f}  max {max(ms):.0f}  mean {statistics.mean(ms):.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    main(parser.parse_args().rounds)
