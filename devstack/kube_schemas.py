"""Refresh `services/models/kube_openapi.json` from a running kube-apiserver.

The CRD generator inlines the real schemas of the Kubernetes types our CRDs embed. They come from
the apiserver's own OpenAPI v3 document, so we keep a snapshot of just the definitions the models
reach (and what those reference). An integration test fails when the snapshot differs from what the
test control plane serves.

    source .dev/env && python -m devstack.kube_schemas
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from services import crdgen, kinds

DOCUMENTS = ("api/v1", "apis/networking.k8s.io/v1")
PREFIX = "#/components/schemas/"


def served_definitions(get_raw: Callable[[str], str]) -> dict[str, Any]:
    """Every component schema of the documents we draw from, merged."""
    merged: dict[str, Any] = {}
    for doc in DOCUMENTS:
        merged.update(json.loads(get_raw(f"/openapi/v3/{doc}"))["components"]["schemas"])
    return merged


def closure(roots: set[str], definitions: dict[str, Any]) -> dict[str, Any]:
    """`roots` and every definition they reference, transitively."""
    wanted: dict[str, Any] = {}
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted[name] = definitions[name]
        pending.extend(_references(wanted[name]))
    return dict(sorted(wanted.items()))


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"].removeprefix(PREFIX)] if "$ref" in node else []
        return own + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def model_roots() -> set[str]:
    return set().union(*(crdgen.kube_refs(kind.model.model_json_schema()) for kind in kinds.CUSTOM))


def snapshot(get_raw: Callable[[str], str], version: str) -> dict[str, Any]:
    return {
        "source": f"kube-apiserver {version} /openapi/v3",
        "schemas": closure(model_roots(), served_definitions(get_raw)),
    }


def kubectl_get_raw(path: str) -> str:
    return subprocess.run(["kubectl", "get", "--raw", path], check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    server = json.loads(
        subprocess.run(
            ["kubectl", "version", "-o", "json"], check=True, capture_output=True, text=True, env=os.environ
        ).stdout
    )["serverVersion"]["gitVersion"]
    crdgen.KUBE_OPENAPI.write_text(json.dumps(snapshot(kubectl_get_raw, server), indent=1, sort_keys=True) + "\n")
    print(f"wrote {crdgen.KUBE_OPENAPI}")
