"""The CRDs in crd/ are exactly what the models generate, and they are structural."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from devstack.tools import REPO
from services import crdgen
from services.models import cloud, cluster, deployment

GENERATED = crdgen.generate()


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_file_is_fresh(name: str) -> None:
    path = REPO / "crd" / name
    assert path.exists(), f"{name} missing: run `make crds`"
    assert path.read_text() == GENERATED[name], f"{name} is stale: run `make crds`"


def test_check_mode_reports_stale_files(tmp_path) -> None:
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "restateclusters.yaml").write_text("edited by hand\n")
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1


def schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in (node.get("properties") or {}).items():
        found += schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += schema_nodes(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_schema_node_is_structural(name: str) -> None:
    crd = yaml.safe_load(GENERATED[name])
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in schema_nodes(root):
        assert not {"$ref", "$defs", "title", "nullable", "oneOf", "allOf"} & node.keys(), path
        typed = (
            "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"
        assert "default" not in node or node["default"] is not None, path
        if "properties" in node:
            assert "additionalProperties" not in node, path


def test_embedded_kubernetes_types_carry_their_real_schema() -> None:
    crd = yaml.safe_load(GENERATED["restateclusters.yaml"])
    compute = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["compute"]
    affinity = compute["properties"]["affinity"]
    assert set(affinity["properties"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    assert affinity["description"] == "Pod scheduling constraints."
    toleration = compute["properties"]["tolerations"]["items"]
    assert {"Equal", "Exists"} <= set(toleration["properties"]["operator"]["enum"])
    requests = compute["properties"]["resources"]["properties"]["requests"]["additionalProperties"]
    # A quantity is checked against resource.Quantity's grammar (the apiserver checks none in a template).
    assert requests == {"x-kubernetes-int-or-string": True, "pattern": crdgen.QUANTITY_PATTERN}


@pytest.mark.parametrize("good", ["1", "0.5", ".5", "500m", "1.5Gi", "512Mi", "2e3", "1E-3", "+1k", "100u", "10n"])
def test_the_quantity_pattern_accepts_what_kubernetes_parses(good: str) -> None:
    assert re.match(crdgen.QUANTITY_PATTERN, good)


@pytest.mark.parametrize("bad", ["lots", "1GB", "1.5.5", "512 Mi", "Gi", "1Gi ", "1ki", "", "1e"])
def test_the_quantity_pattern_refuses_what_kubernetes_does_not(bad: str) -> None:
    """Regression: `cpu: lots` was accepted and failed only when the operator wrote the ReplicaSet."""
    assert not re.match(crdgen.QUANTITY_PATTERN, bad)


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("RestateCluster", cluster.RestateCluster),
        ("RestateDeployment", deployment.RestateDeployment),
        ("RestateCloudEnvironment", cloud.RestateCloudEnvironment),
    ],
)
def test_examples_parse_into_the_models(kind: str, model: type[Any]) -> None:
    docs = [
        doc
        for path in sorted((REPO / "examples").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == kind
    ]
    assert docs
    for doc in docs:
        parsed = model.model_validate(doc)
        assert parsed.metadata["name"] == doc["metadata"]["name"]


def test_register_alias_round_trips() -> None:
    doc = yaml.safe_load((REPO / "examples" / "restatedeployment.yaml").read_text())
    parsed = deployment.RestateDeployment.model_validate(doc)
    assert parsed.spec.restate.register_to.cluster == "restate-example"
    dumped = parsed.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["restate"]["register"] == {"cluster": "restate-example"}
