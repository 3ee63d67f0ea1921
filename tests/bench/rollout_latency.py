"""Benchmark: RestateDeployment apply->Ready and v1->v2 rollout latency (not a test; prints numbers).

Starts its own stack with the operator and the pod runner, then repeatedly (a) creates a fresh
RestateDeployment of examples/versioned and times apply -> Ready (registered and routed), and
(b) switches an existing one between v1 and v2 and times apply -> Ready with the new version
latest in Restate. Ready is seen through a watch (no polling interval in the figures).

    .venv/bin/python -m tests.bench.rollout_latency [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from devstack.images import VERSIONED_IMAGE
from tests.bench.common import Api, ReadyWatch, report, running_operator


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


def timed_apply(api: Api, watch: ReadyWatch, obj: dict[str, Any]) -> float:
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    started = time.monotonic()
    path = f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments/{name}"
    generation = api.apply(path, obj)["metadata"]["generation"]
    return watch.wait(name, generation, namespace) - started


def main(rounds: int) -> None:
    with running_operator() as stack:
        api, admin = Api(stack), stack.restate.admin_url
        api.create_namespace("bench")
        watch = ReadyWatch(stack, "/apis/restate.dev/v1beta1/restatedeployments")
        try:
            created = [timed_apply(api, watch, resource(f"svc{i}", "bench", "v1", admin)) for i in range(rounds)]
            rolled = [
                timed_apply(api, watch, resource("svc0", "bench", ("v2", "v1")[i % 2], admin)) for i in range(rounds)
            ]
        finally:
            watch.close()
    report("apply->Ready (new RestateDeployment)", created)
    report("v1<->v2 rollout apply->Ready (new version latest)", rolled)
    print(f"rerun: .venv/bin/python -m tests.bench.rollout_latency --rounds {rounds}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    main(parser.parse_args().rounds)
