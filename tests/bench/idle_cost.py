"""Benchmark: what many resources cost while nothing changes: CPU per minute, journal and state growth.

On a fresh stack, creates N RestateDeployments of the light benchmark image, waits until all are
Ready and quiet, then for M minutes changes nothing and measures the operator's CPU (services and
watcher), the bootstrap restate-server's CPU and disk growth, and how many reconcile invocations
Restate ran or keeps (`sys_invocation`) and how many state rows it holds (`state`). The watcher
resyncs every `--resync` seconds (300 in production): each resync is a pass per resource, so idle
cost is mostly resyncs. Flat means: the figures of each minute are alike, nothing accumulates.
Restate keeps each finished pass `--retention` seconds (RECONCILE_RETENTION_SECONDS, 3600 by
default) and purges the expired ones every `--cleanup` (worker.cleanup-interval; the chart sets
10m), so the kept invocations climb for the retention and then saw between about
count x retention / resync and count x (retention + cleanup) / resync: a run longer than
retention + cleanup shows the plateau.

    .venv/bin/python -m tests.bench.idle_cost [--count 50] [--minutes 3] [--resync 60] [--retention 3600]
        [--cleanup 10m]
"""

from __future__ import annotations

import argparse
import os
import time

import httpx

from tests import light
from tests.bench.common import Api, ReadyWatch, cpu_seconds, disk_mb, record, running_stack_and_operator
from tests.bench.operator_cost import RSDS, counter_total, rsd_path
from tests.bench.scale import NAMESPACE, make_room

QUIET_SECONDS = 20.0


def query(admin: httpx.Client, sql: str) -> int:
    response = admin.post("/query", json={"query": sql}, headers={"Accept": "application/json"})
    response.raise_for_status()
    return int(response.json()["rows"][0]["n"])


def main(count: int, minutes: int, resync: int, retention: int, cleanup: str) -> None:
    os.environ["RESTATE_WORKER__CLEANUP_INTERVAL"] = cleanup  # the stack's restate-server inherits it
    started = running_stack_and_operator(
        services_env={"RECONCILE_RETENTION_SECONDS": str(retention)}, watcher_env={"RESYNC_SECONDS": str(resync)}
    )
    with started as (stack, operator), httpx.Client(timeout=60) as admin:
        api, admin_url = Api(stack), stack.restate.admin_url
        admin.base_url = httpx.URL(admin_url)  # one client: a new one per query re-reads the CA file
        api.create_namespace(NAMESPACE)
        make_room(stack, count + 10)  # past 220 pods the stack's two nodes leave the rest Pending
        watch = ReadyWatch(stack, RSDS)
        try:
            applied = [
                api.apply(rsd_path(NAMESPACE, f"b{i}"), light.rsd(i, "v1", admin_url, NAMESPACE)) for i in range(count)
            ]
            for i, obj in enumerate(applied):
                watch.wait(f"b{i}", obj["metadata"]["generation"], NAMESPACE, timeout=900)
        finally:
            watch.close()
        time.sleep(QUIET_SECONDS)  # the last drains and wake-ups
        assert operator.services is not None
        assert stack.restate.process is not None
        minutes_seen = []
        for minute in range(minutes + 1):
            sample = {
                "operator_cpu_s": cpu_seconds(operator.services.pid)
                + sum(cpu_seconds(w.pid) for w in operator.watchers),
                "restate_cpu_s": cpu_seconds(stack.restate.process.pid),
                "restate_disk_mb": disk_mb(stack.restate.work),
                "invocations": query(admin, "SELECT count(*) AS n FROM sys_invocation"),
                "state_rows": query(admin, "SELECT count(*) AS n FROM state"),
                "passes": counter_total(
                    operator.metrics(operator.services_probes_port), "controller_runtime_reconcile_total"
                ),
            }
            minutes_seen.append(sample)
            record(
                "idle_cost", count=count, resync_s=resync, retention_s=retention, minutes=minutes_seen
            )  # a stopped run keeps its minutes
            if minute:
                before = minutes_seen[-2]
                print(
                    f"minute {minute}: operator CPU {sample['operator_cpu_s'] - before['operator_cpu_s']:.2f} s, "
                    f"restate-server CPU {sample['restate_cpu_s'] - before['restate_cpu_s']:.2f} s, "
                    f"passes {sample['passes'] - before['passes']:.0f}, "
                    f"invocations kept {sample['invocations']} ({sample['invocations'] - before['invocations']:+}), "
                    f"state rows {sample['state_rows']} ({sample['state_rows'] - before['state_rows']:+}), "
                    f"restate disk {sample['restate_disk_mb']:.0f} MB",
                    flush=True,  # an hour-long run shows its minutes as they come, also into a file
                )
            if minute < minutes:
                time.sleep(60)
        print(
            f"rerun: .venv/bin/python -m tests.bench.idle_cost --count {count} --minutes {minutes} "
            f"--resync {resync} --retention {retention} --cleanup {cleanup}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--resync", type=int, default=60)
    parser.add_argument("--retention", type=int, default=3600)
    parser.add_argument("--cleanup", default="10m", help="restate-server's worker.cleanup-interval")
    args = parser.parse_args()
    main(args.count, args.minutes, args.resync, args.retention, args.cleanup)
