"""Benchmark: apply -> reconciled latency of the reconcile core (not a test; prints numbers).

Starts its own stack (control plane, restate-server, services, watcher), then for N rounds edits a
RestateCloudEnvironment's spec and measures the time until its status shows Ready=True with
observedGeneration equal to the new generation, seen through a watch (no polling interval).

    .venv/bin/python -m tests.bench.reconcile_latency [--rounds 50]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from devstack.operator import OPERATOR_NAMESPACE
from tests.bench.common import Api, ReadyWatch, report, running_operator

ENVIRONMENT: dict[str, Any] = {
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


PATH = "/apis/restate.dev/v1beta1/restatecloudenvironments"


def main(rounds: int) -> None:
    with running_operator() as stack:
        cp, api = stack.control_plane, Api(stack)
        cp.kubectl("create", "secret", "generic", "bench-token", "-n", OPERATOR_NAMESPACE, "--from-literal=token=x")
        watch = ReadyWatch(stack, PATH)
        try:
            api.apply(f"{PATH}/bench", ENVIRONMENT)
            watch.wait("bench", 1)
            latencies = []
            for i in range(1, rounds + 1):
                edited = {**ENVIRONMENT, "spec": {**ENVIRONMENT["spec"], "region": f"r{i}"}}
                started = time.monotonic()
                generation = api.apply(f"{PATH}/bench", edited)["metadata"]["generation"]
                latencies.append(watch.wait("bench", generation) - started)
        finally:
            watch.close()
    report(f"apply->reconciled ({rounds} spec edits)", latencies)
    print(f"rerun: .venv/bin/python -m tests.bench.reconcile_latency --rounds {rounds}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    main(parser.parse_args().rounds)
