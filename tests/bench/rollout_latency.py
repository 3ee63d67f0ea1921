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
import time
from typing import Any

from devstack import procs
from devstack.images import VERSIONED_IMAGE
from devstack.stack import Stack
from tests.bench.common import ready_generation, report, running_operator


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


def timed_apply(stack: Stack, obj: dict[str, Any]) -> float:
    started = time.monotonic()
    out = stack.control_plane.kubectl("apply", "-o", "json", "-f", "-", input=json.dumps(obj))
    generation = json.loads(out)["metadata"]["generation"]
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    procs.wait_until(
        f"{name} generation {generation} Ready",
        lambda: ready_generation(stack, "rsd", name, namespace) == generation,
        timeout=120,
        interval=0.02,
    )
    return time.monotonic() - started


def main(rounds: int) -> None:
    with running_operator() as stack:
        admin = stack.restate.admin_url
        stack.control_plane.kubectl("create", "namespace", "bench")
        created = [timed_apply(stack, resource(f"svc{i}", "bench", "v1", admin)) for i in range(rounds)]
        rolled = [timed_apply(stack, resource("svc0", "bench", ("v2", "v1")[i % 2], admin)) for i in range(rounds)]
    report("apply->Ready (new RestateDeployment)", created)
    report("v1<->v2 rollout apply->Ready (new version latest)", rolled)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    main(parser.parse_args().rounds)
