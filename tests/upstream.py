"""What the upstream operator 2.8.1 really created, recorded (tests/fixtures/upstream/README.md).

Test vectors for drop-in compatibility: the objects as the apiserver stored them, managedFields
included. `as_created` turns a recorded child back into what upstream's operator wrote, for tests
that lay out upstream's objects on a fresh cluster before our operator takes over.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml

from devstack.control_plane import ADMIN_TOKEN
from devstack.stack import Stack

Obj = dict[str, Any]
FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink")


def objects(file: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all((FIXTURES / file).read_text()) if doc]


def find(file: str, kind: str, name: str) -> Obj:
    return next(o for o in objects(file) if o["kind"] == kind and o["metadata"]["name"] == name)


def as_created(obj: Obj, *, owner_uid: str, recorded_owner_uid: str) -> Obj:
    """`obj` without what the server filled in, its owner's uid (wherever it appears) replaced."""
    text = json.dumps(obj).replace(recorded_owner_uid, owner_uid)
    created: Obj = json.loads(text)
    for field in SERVER_FIELDS:
        created["metadata"].pop(field, None)
    created["metadata"].get("annotations", {}).pop("deployment.kubernetes.io/revision", None)
    created.pop("status", None)
    return created


def add_finalizer_as_upstream(stack: Stack, path: str, finalizer: str) -> None:
    """As kube-runtime's `finalizer()`: a JSON patch with a `test` precondition, no field manager, no
    User-Agent, which the apiserver records as manager `unknown`. `path` is the object's API path."""
    cp = stack.control_plane
    patch = [
        {"op": "test", "path": "/metadata/finalizers", "value": None},
        {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
    ]
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cp.ca_file)), timeout=30) as http:
        del http.headers["User-Agent"]
        response = http.patch(
            f"{cp.server}{path}",
            content=json.dumps(patch),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json-patch+json"},
        )
    response.raise_for_status()


def apply_as_upstream(stack: Stack, objects: list[Obj]) -> None:
    """Server-side apply each object under upstream's field manager `restate-operator` (ours too)."""
    for obj in objects:
        stack.control_plane.kubectl(
            "apply",
            "--server-side",
            "--field-manager=restate-operator",
            "--force-conflicts",
            "-f",
            "-",
            input=json.dumps(obj),
        )
