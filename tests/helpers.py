"""Small helpers shared by integration and e2e tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from devstack import procs
from devstack.stack import Stack

Obj = dict[str, Any]


def apply(stack: Stack, obj: Obj) -> None:
    """kubectl apply (client-side), as a user would."""
    stack.control_plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(stack: Stack, kind: str, name: str, namespace: str | None = None) -> Obj | None:
    args = ["get", kind, name, "-o", "json", *(["-n", namespace] if namespace else [])]
    result = stack.control_plane.kubectl_result(*args)
    found: Obj | None = json.loads(result.stdout) if result.returncode == 0 else None
    return found


def condition(obj: Obj | None, type_: str) -> Obj:
    """The condition of that type ({} when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def sql(stack: Stack, query: str) -> list[Obj]:
    """Rows of a SQL query, retrying for a moment after a restart of restate-server."""

    def answered() -> httpx.Response:
        response = httpx.post(
            f"{stack.restate.admin_url}/query",
            json={"query": query},
            headers={"accept": "application/json"},
            timeout=30,
        )
        return response.raise_for_status()

    response = procs.wait_until(f"restate to answer {query!r}", answered, timeout=10, interval=0.2)
    rows: list[Obj] = response.json()["rows"]
    return rows


def step_durable(rows: list[Obj], step_prefix: str) -> bool:
    """Whether a journal (rows of sys_journal: index, entry_type, name) holds the *result* of a step.

    A step's command entry is written when it starts; its result arrives as the next entry, a
    "Notification: Run". Only then will a crash not run it again (our handlers await each step at once).
    """
    started = {int(r["index"]) for r in rows if str(r.get("name", "")).startswith(step_prefix)}
    return any(r.get("entry_type") == "Notification: Run" and int(r["index"]) - 1 in started for r in rows)


def warning_events(stack: Stack, name: str) -> list[Obj]:
    """Warning Events about an object of ours (cluster-scoped ones are recorded in namespace default)."""
    listed = stack.control_plane.kubectl(
        "get",
        "events.events.k8s.io",
        "-n",
        "default",
        "-o",
        "json",
        f"--field-selector=regarding.name={name},type=Warning",
    )
    events: list[Obj] = json.loads(listed)["items"]
    return events
