"""RestateDeployments of the light benchmark image, shared by the scale benchmark and the load test.

Every pod of `images.BENCH_IMAGE` is served by one shared process (`devstack.bench_server`) as the
Restate service its container's SERVICE_NAME names (handlers `whoami`, `hold`), so a hundred
resources fit on two cores while their registrations, pinned invocations and drains stay real.
Also here: the reconcile invocations the bootstrap Restate knows of, the count both measure.
"""

from __future__ import annotations

from typing import Any

import httpx

from devstack.images import BENCH_IMAGE

Obj = dict[str, Any]

INVOCATIONS = (
    "SELECT status, count(*) AS n FROM sys_invocation "
    "WHERE target_service_name = 'DeploymentReconciler' AND target_handler_name = 'reconcile' GROUP BY status"
)


def name(i: int) -> str:
    return f"b{i}"


def service(i: int) -> str:
    """The Restate service resource `i` serves (one per resource: versions of one service replace each other)."""
    return f"Bench{i}"


def rsd(i: int, version: str, admin: str, namespace: str) -> Obj:
    """Resource `i` at `version` (the image tag, which is what `whoami` answers), registered at `admin`."""
    container = {
        "name": "svc",
        "image": f"{BENCH_IMAGE}:{version}",
        "env": [{"name": "SERVICE_NAME", "value": service(i)}],
    }
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name(i), "namespace": namespace},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 1,
            "template": {"metadata": {"labels": {"app": name(i)}}, "spec": {"containers": [container]}},
            "restate": {"register": {"url": admin}, "drainDelaySeconds": 0},
        },
    }


def query(admin: str, sql: str) -> list[Obj]:
    response = httpx.post(f"{admin}/query", json={"query": sql}, headers={"Accept": "application/json"}, timeout=30)
    response.raise_for_status()
    rows: list[Obj] = response.json()["rows"]
    return rows


def reconcile_invocations(admin: str) -> tuple[int, int]:
    """(every reconcile invocation Restate knows, those of them scheduled for later: pending wake-ups)."""
    counts = {row["status"]: int(row["n"]) for row in query(admin, INVOCATIONS)}
    return sum(counts.values()), counts.get("scheduled", 0)
