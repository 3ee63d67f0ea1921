"""Helpers for end-to-end tests of RestateDeployments that serve the `Versioned` example.

Every such test shares the Restate service `Versioned`, so each runs in a namespace of its own that
`namespace_for` cleans up completely afterwards: the RestateDeployment deleted (its versions forced
to drain, so deletion is not held), and any registration left in that namespace removed.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from devstack import procs
from devstack.stack import Stack
from tests.helpers import condition, get, sql

Obj = dict[str, Any]
NAME = "versioned"


def reconciler_url(stack: Stack, namespace: str, handler: str, name: str = NAME) -> str:
    key = urllib.parse.quote(f"{namespace}/{name}", safe="")
    return f"{stack.restate.ingress_url}/DeploymentReconciler/{key}/{handler}"


def call(
    stack: Stack, handler: str, body: Any = None, *, send: bool = False, service: str = "Versioned"
) -> httpx.Response:
    suffix = "/send" if send else ""
    return httpx.post(f"{stack.restate.ingress_url}/{service}/{handler}{suffix}", json=body, timeout=60)


def whoami(stack: Stack, service: str = "Versioned") -> str:
    response = call(stack, "whoami", service=service)
    assert response.status_code == 200, response.text
    answer: str = response.json()
    return answer


def versions(stack: Stack, namespace: str, name: str = NAME) -> dict[str, Obj]:
    obj = get(stack, "rsd", name, namespace) or {}
    return {v["name"]: v for v in (obj.get("status") or {}).get("versions") or []}


def phases(stack: Stack, namespace: str, name: str = NAME) -> dict[str, str]:
    return {version: v["phase"] for version, v in versions(stack, namespace, name).items()}


def wait_ready(stack: Stack, namespace: str, timeout: float = 60, name: str = NAME) -> Obj:
    """The RestateDeployment once Ready for its current generation."""
    found: dict[str, Obj] = {}

    def ready() -> bool:
        obj = get(stack, "rsd", name, namespace)
        cond = condition(obj, "Ready")
        if obj and cond.get("status") == "True" and cond.get("observedGeneration") == obj["metadata"]["generation"]:
            found["obj"] = obj
            return True
        return False

    procs.wait_until("RestateDeployment Ready", ready, timeout=timeout)
    return found["obj"]


def deployments(stack: Stack) -> dict[str, Obj]:
    """Restate's deployments by id."""
    listed = httpx.get(f"{stack.restate.admin_url}/deployments", timeout=30).json()["deployments"]
    return {d["id"]: d for d in listed}


def pinned(stack: Stack, invocation: str) -> bool:
    """Restate has pinned the invocation to a deployment (it started on a version)."""
    query = f"SELECT id FROM sys_invocation_status WHERE id = '{invocation}' AND pinned_deployment_id IS NOT NULL"
    return bool(sql(stack, query))


def completed(stack: Stack, invocation: str) -> Obj | None:
    """A finished invocation's status row (`completion_result`, `pinned_deployment_id`), None while it
    runs. Unlike its output, Restate keeps this once the deployment it ran on is deregistered, which
    a deletion waiting for the invocation does the moment it ends."""
    query = (
        "SELECT status, completion_result, pinned_deployment_id FROM sys_invocation_status "
        f"WHERE id = '{invocation}' AND status = 'completed'"
    )
    rows = sql(stack, query)
    return rows[0] if rows else None


def output(stack: Stack, invocation: str) -> Any:
    """An invocation's result, None while it runs."""
    response = httpx.get(f"{stack.restate.ingress_url}/restate/invocation/{invocation}/output", timeout=30)
    return response.json() if response.status_code == 200 else None


@contextlib.contextmanager
def namespace_for(stack: Stack, prefix: str, name: str = NAME, *, timeout: float = 60) -> Iterator[str]:
    """A fresh namespace for one RestateDeployment `name`, removed with every registration afterwards."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    stack.control_plane.kubectl("create", "namespace", namespace)
    try:
        yield namespace
    finally:
        stack.control_plane.kubectl("delete", "rsd", name, "-n", namespace, "--ignore-not-found", "--wait=false")
        for version in versions(stack, namespace, name):
            httpx.post(reconciler_url(stack, namespace, "forceDrain", name), json={"version": version}, timeout=60)
        procs.wait_until(
            "RestateDeployment deleted", lambda: get(stack, "rsd", name, namespace) is None, timeout=timeout
        )
        for deployment in deployments(stack).values():
            if f".{namespace}.svc" in deployment["uri"]:
                httpx.delete(f"{stack.restate.admin_url}/deployments/{deployment['id']}", params={"force": "true"})
        stack.control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
