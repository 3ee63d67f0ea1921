"""Benchmark: apply -> reconciled latency of the reconcile core (not a test; prints numbers).

Starts its own stack (control plane, restate-server, services, watcher), then for N rounds edits a
RestateCloudEnvironment's spec and measures the time until its status shows Ready=True with
observedGeneration equal to the new generation, polling the apiserver every 10 ms.

    .venv/bin/python -m tests.bench.reconcile_latency [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import time

from devstack import procs
from devstack.operator import OPERATOR_NAMESPACE
from devstack.stack import Stack
from tests.bench.common import ready_generation, report, running_operator

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


def wait_reconciled(stack: Stack, generation: int) -> None:
    procs.wait_until(
        f"generation {generation} Ready",
        lambda: ready_generation(stack, "rce", "bench") == generation,
        timeout=120,
        interval=0.01,
    )


def main(rounds: int) -> None:
    with running_operator() as stack:
        cp = stack.control_plane
        cp.kubectl("create", "secret", "generic", "bench-token", "-n", OPERATOR_NAMESPACE, "--from-literal=token=x")
        cp.kubectl("apply", "-f", "-", input=json.dumps(ENVIRONMENT))
        wait_reconciled(stack, 1)
        latencies = []
        for i in range(1, rounds + 1):
            started = time.monotonic()
            patch = json.dumps({"spec": {"region": f"r{i}"}})
            out = cp.kubectl("patch", "rce", "bench", "--type=merge", "-o", "json", "-p", patch)
            generation = json.loads(out)["metadata"]["generation"]
            wait_reconciled(stack, generation)
            latencies.append(time.monotonic() - started)
    report(f"apply->reconciled ({rounds} spec edits)", latencies)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    main(parser.parse_args().rounds)
