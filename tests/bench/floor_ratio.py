"""Benchmark: apply -> Ready of a RestateDeployment and a RestateCluster, divided by this run's floor.

The floor is what one reconcile pass cannot avoid on this stack: the apply itself plus the
apiserver round trips of one pass (read the object, one server-side apply per child it writes,
list its EndpointSlices, write its status), timed with the same kept-alive client the benchmark
applies with, on the same machine at the same moment. Ready is seen through a watch, never by
polling. A ratio of 1 would be an operator that costs nothing beyond the apiserver; the rest is
the watcher's debounce, Restate's invocation, the pods' processes starting (the pod runner marks
them Ready only when they answer) and the registration. The machine has 2 shared cores: repeat.

    .venv/bin/python -m tests.bench.floor_ratio [--rounds 20] [--cluster-rounds 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from tests.bench.common import Api, ReadyWatch, percentile, record, running_stack_and_operator
from tests.bench.operator_cost import RSDS, rsd_path
from tests.bench.rollout_latency import resource

RSCS = "/apis/restate.dev/v1/restateclusters"
CHILD_WRITES = 4  # a RestateDeployment pass applies its ReplicaSet and Service, its finalizer and status


def restate_cluster(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1",
        "kind": "RestateCluster",
        "metadata": {"name": name},
        "spec": {
            "cluster": {"autoProvision": True},
            "config": "auto-provision = false\ndefault-num-partitions = 2\n",
            "compute": {"image": "docker.io/restatedev/restate:1.7.12"},
            "storage": {"storageRequestBytes": 1 << 30},
            "security": {"networkPeers": {"ingress": [], "admin": []}},
        },
    }


def floor(api: Api, i: int) -> float:
    """Seconds for the apply plus one pass's round trips, on ConfigMaps of a scratch namespace."""
    started = time.monotonic()
    path = "/api/v1/namespaces/floor/configmaps"
    api.apply(f"{path}/user-{i}", config_map(f"user-{i}", i))  # stands for the user's apply
    api.get(f"{path}/user-{i}")  # the pass reads the object
    for child in range(CHILD_WRITES):
        api.apply(f"{path}/child-{i}-{child}", config_map(f"child-{i}-{child}", i))
    api.get("/apis/discovery.k8s.io/v1/namespaces/floor/endpointslices")
    return time.monotonic() - started


def config_map(name: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "floor"},
        "data": {"round": str(i), "payload": "x" * 2048},  # about a ReplicaSet's size
    }


def summary(label: str, seconds: list[float], floor_p50: float) -> None:
    ms = [s * 1000 for s in seconds]
    p50, p95 = percentile(ms, 0.5), percentile(ms, 0.95)
    print(f"{label}: p50 {p50:.0f} ms ({p50 / floor_p50:.1f}x floor), p95 {p95:.0f} ms ({p95 / floor_p50:.1f}x floor)")


def main(rounds: int, cluster_rounds: int) -> None:
    with running_stack_and_operator() as (stack, _):
        api, admin = Api(stack), stack.restate.admin_url
        api.create_namespace("bench")
        api.create_namespace("floor")
        floors = [floor(api, i) for i in range(rounds)]
        floor_p50 = percentile([f * 1000 for f in floors], 0.5)
        print(f"floor (apply + {CHILD_WRITES + 2} round trips) over {rounds} runs: p50 {floor_p50:.1f} ms")
        rsds, rscs = ReadyWatch(stack, RSDS), ReadyWatch(stack, RSCS)
        try:
            created = []
            for i in range(rounds):
                started = time.monotonic()
                obj = resource(f"floor{i}", "bench", "v1", admin)
                generation = api.apply(rsd_path("bench", f"floor{i}"), obj)["metadata"]["generation"]
                created.append(rsds.wait(f"floor{i}", generation, "bench") - started)
            clusters = []
            for i in range(cluster_rounds):
                started = time.monotonic()
                name = f"bench-rsc{i}"
                generation = api.apply(f"{RSCS}/{name}", restate_cluster(name))["metadata"]["generation"]
                clusters.append(rscs.wait(name, generation, timeout=180) - started)
                api.http.delete(f"{RSCS}/{name}")  # one restate-server at a time on 2 cores
        finally:
            rsds.close()
            rscs.close()
        record("floor_ratio", floor_s=floors, deployment_s=created, cluster_s=clusters)
        summary(f"RestateDeployment apply->Ready over {rounds} runs", created, floor_p50)
        summary(f"RestateCluster apply->Ready over {cluster_rounds} runs", clusters, floor_p50)
        print(f"rerun: .venv/bin/python -m tests.bench.floor_ratio --rounds {rounds} --cluster-rounds {cluster_rounds}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cluster-rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.rounds, args.cluster_rounds)
