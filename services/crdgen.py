"""Generate `crd/*.yaml` from the pydantic models: `python -m services.crdgen [--check]`.

The models are the single source. This module turns their JSON schema into structural OpenAPI v3
(no `$ref`, no `null`, a type on every node), inlines the real schema of every embedded Kubernetes
type from `kube_openapi.json` (a snapshot of the kube-apiserver's own OpenAPI v3 document), and
adds what only a CRD has (printer columns, subresources, short names, name limits), all read from
the kind registry (`services.kinds`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from services import kinds
from services.models.common import KUBE_REF

Schema = dict[str, Any]
KUBE_OPENAPI = Path(__file__).parent / "models" / "kube_openapi.json"
CRD_DIR = Path(__file__).resolve().parents[1] / "crd"
INT_OR_STRING = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "io.k8s.apimachinery.pkg.api.resource.Quantity",
}
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# The apiserver checks the quantities of a real Pod, never those of a template inside our CRDs: without
# this pattern `cpu: lots` or `memory: 1GB` is accepted and fails only when the operator writes the
# ReplicaSet or StatefulSet. The grammar of resource.Quantity (number, then a binary or decimal SI
# suffix or an exponent). A pattern, not CEL `isQuantity`: the rule's estimated cost over every
# quantity of an embedded PodSpec exceeds the CRD budget a hundredfold; a pattern costs nothing.
QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
QUANTITY_SCHEMA: Schema = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}
# An image reference never holds whitespace, yet a Pod's image is checked only for a leading or
# trailing blank, and a template's not even that: `my image:1` would wait for pods forever.
CONTAINERS = {"io.k8s.api.core.v1.Container", "io.k8s.api.core.v1.EphemeralContainer"}
IMAGE_PATTERN = r"^\S+$"
DROPPED_KUBE_KEYS = {
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-unions",
    "x-kubernetes-group-version-kind",
}


class _NoNullGenerator(GenerateJsonSchema):
    """Kubernetes has no null: an optional field is one that may be absent."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def kube_definitions() -> dict[str, Schema]:
    definitions: dict[str, Schema] = json.loads(KUBE_OPENAPI.read_text())["schemas"]
    return definitions


def kube_refs(schema: Any) -> set[str]:
    """Every embedded Kubernetes type a model schema names."""
    if isinstance(schema, dict):
        found = {schema[KUBE_REF]} if KUBE_REF in schema else set()
        return found.union(*(kube_refs(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(kube_refs(v) for v in schema))
    return set()


@dataclass
class _Structural:
    """Converts one pydantic JSON schema (with its `$defs`) into a structural schema."""

    defs: dict[str, Schema]
    kube: dict[str, Schema]
    _stack: list[str] = field(default_factory=list)

    def model(self, node: Schema) -> Schema:
        if "$ref" in node:
            target = self.defs[node["$ref"].removeprefix("#/$defs/")]
            return self.model({**target, **{k: v for k, v in node.items() if k != "$ref"}})
        if KUBE_REF in node:
            embedded = self.kube_type(node[KUBE_REF])
            if "description" in node:
                embedded["description"] = node["description"]
            extra = {k: v for k, v in node.items() if k.startswith("x-kubernetes") and k != KUBE_REF}
            return {**embedded, **extra}
        out: Schema = {}
        for key, value in node.items():
            if key in ("title", "$defs") or (key == "default" and value is None):
                continue
            if key == "properties":
                out[key] = {name: self.model(prop) for name, prop in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self.model(value)
            else:
                out[key] = value
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        return out

    def kube_type(self, name: str) -> Schema:
        if name == QUANTITY:
            return copy.deepcopy(QUANTITY_SCHEMA)
        if name in INT_OR_STRING:
            return {"x-kubernetes-int-or-string": True}
        if name in self._stack:
            raise ValueError(f"recursive Kubernetes type {name} cannot be inlined into a CRD")
        self._stack.append(name)
        try:
            node = self.kube_node(self.kube[name])
        finally:
            self._stack.pop()
        if name in CONTAINERS and "image" in node.get("properties", {}):
            node["properties"]["image"]["pattern"] = IMAGE_PATTERN
        return node

    def kube_node(self, node: Schema) -> Schema:
        ref = node.get("$ref") or (node["allOf"][0]["$ref"] if len(node.get("allOf", [])) == 1 else None)
        if ref:
            inlined = self.kube_type(ref.removeprefix("#/components/schemas/"))
            if "description" in node:
                inlined["description"] = node["description"]
            return inlined
        out: Schema = {}
        for key, value in node.items():
            if key in DROPPED_KUBE_KEYS or key == "default":
                continue  # defaults belong to the real objects' apiserver, not to our CRD
            if key == "properties":
                out[key] = {name: self.kube_node(prop) for name, prop in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self.kube_node(value)
            else:
                out[key] = value
        keys = out.get("x-kubernetes-list-map-keys")
        if keys and any(key not in out["items"].get("required", []) for key in keys):
            # A list-map key must be required or defaulted. A default would be written into every
            # stored object (ports get `protocol: TCP`), changing the pod template upstream hashed
            # as the user wrote it, so every version would get a new name on takeover. Atomic lists
            # need no key: the template is stored exactly as written.
            del out["x-kubernetes-list-map-keys"]
            out["x-kubernetes-list-type"] = "atomic"
        return out


def structural(model: type[BaseModel], kube: dict[str, Schema]) -> Schema:
    raw = model.model_json_schema(by_alias=True, schema_generator=_NoNullGenerator)
    return _Structural(raw.get("$defs", {}), kube).model(raw)


def crd(kind: kinds.CustomKind, kube: dict[str, Schema]) -> Schema:
    spec = {**structural(kind.spec_model(), kube), **kind.spec_rules}
    spec["description"] = f"Desired state of the {kind.kind}."
    status = structural(kind.status_model(), kube)
    status["description"] = f"Observed state of the {kind.kind}, written by the operator."
    subresources: Schema = {"status": {}}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.labelSelector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{kind.group}",
            "labels": {"app.kubernetes.io/name": "restate-operator", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": kind.group,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": [kind.short_name],
                "categories": ["restate"],
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": kind.printer_columns,
                    "subresources": subresources,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (kind.model.__doc__ or "").strip(),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {
                                    "type": "object",
                                    "properties": {
                                        "name": {
                                            "type": "string",
                                            "maxLength": kind.name_max_length,
                                            "pattern": kind.name_pattern,
                                        }
                                    },
                                },
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(document: Schema) -> str:
    header = "# Generated by `make crds` (services/crdgen.py) from the pydantic models. Do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


def generate() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    kube = kube_definitions()
    return {f"{kind.plural}.yaml": render(crd(kind, kube)) for kind in kinds.CUSTOM}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when crd/ differs from the models")
    parser.add_argument("--out", type=Path, default=CRD_DIR)
    args = parser.parse_args(argv)
    stale = []
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"stale CRDs: {', '.join(stale)}; run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
