"""What the chart tests share: the chart, the release they render, a helm runner and lookups."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from devstack import tools

Obj = dict[str, Any]

CHART = tools.REPO / "charts" / "restate-operator"
NS = "restate-system"
RELEASE = "ops"
# A stand-in for Prometheus Operator's PrometheusRule CRD, for server dry runs (see the file)
PROMETHEUSRULE_CRD = Path(__file__).resolve().with_name("prometheusrule-crd.yaml")


class Helm:
    def __init__(self, binary: Path, env: dict[str, str], work: Path) -> None:
        self.binary, self.env, self.work = binary, env, work

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, check=False, timeout=120
        )

    def values_file(self, values: Obj) -> Path:
        path = self.work / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def template(self, values: Obj | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
        args = ["template", RELEASE, str(CHART), "--namespace", NS, *extra]
        if values is not None:
            args += ["--values", str(self.values_file(values))]
        return self.run(*args)

    def render(self, values: Obj | None = None) -> list[Obj]:
        result = self.template(values)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered; have {sorted(kinds_and_names(objects))}"
    return found[0]


def kinds_and_names(objects: list[Obj]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def as_list(objects: list[Obj], namespace: str) -> str:
    """One kubectl input of `objects`, the namespaced ones moved to `namespace`."""
    items = []
    for obj in objects:
        obj = json.loads(json.dumps(obj))
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        items.append(obj)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
