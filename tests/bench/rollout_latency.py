"""Benchmark: RestateDeployment apply->Ready and v1->v2 rollout latency (not a test; prints numbers).

Starts its own stack with the operator and the pod runner, then repeatedly (a) creates a fresh
RestateDeployment of examples/versioned and times apply -> Ready (registered and routed), and
(b) switches an existing one between v1 and v2 and times apply -> Ready with the new version
latest in Restate. Polls the apiserver every 20 ms.

    .venv/bin/python -m tests.bench.rollout_latency [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.reconcile_latency import percentile
from tests.stack.images import VERSIONED_IMAGE
from tests.stack.operator import Operator
from tests.stack.stack import Stack


def resource(name: str, namespace: str, tag: str, admin_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 1,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "svc", "image": f"{VERSIONED_IMAGE}:{tag}"}]},
            },
            "restate": {"register": {"url": admin_url}, "drainDelaySeconds": 0},
        },
    }


def ready_generation(stack: Stack, name: str, namespace: str) -> int | None:
    obj = json.loads(stack.control_plane.kubectl("get", "rsd", name, "-n", namespace, "-o", "json"))
    ready: dict[str, Any] = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
    return int(ready["observedGeneration"]) if ready.get("status") == "True" else None


def timed_apply(stack: Stack, obj: dict[str, Any]) -> float:
    started = time.monotonic()
    out = stack.control_plane.kubectl("apply", "-o", "json", "-f", "-", input=json.dumps(obj))
    generation = json.loads(out)["metadata"]["generation"]
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    while ready_generation(stack, name, namespace) != generation:
        time.sleep(0.02)
    return time.monotonic() - started


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label} over {len(ms)} runs (ms): p50 {percentile(ms, 0.5):.0f}  p95 {percentile(ms, 0.95):.0f}  "
        f"min {min(ms):.0f}  max {max(ms):.0f}"
    )


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work))
        operator = Operator(stack)
        try:
            stack.start()
            operator.start()
            admin = stack.restate.admin_url
            stack.control_plane.kubectl("create", "namespace", "bench")
            created = [timed_apply(stack, resource(f"svc{i}", "bench", "v1", admin)) for i in range(rounds)]
            rolled = [timed_apply(stack, resource("svc0", "bench", ("v2", "v1")[i % 2], admin)) for i in range(rounds)]
        finally:
            operator.stop()
            stack.stop()
    report("apply->Ready (new RestateDeployment)", created)
    report("v1<->v2 rollout apply->Ready (new version latest)", rolled)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    main(parser.parse_args().rounds)
