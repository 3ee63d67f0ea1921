"""The generated CRDs on the real apiserver: examples accepted with their defaults, mistakes rejected
with messages a user understands, `kubectl explain` and printer columns working.

Creates are server-side dry runs (nothing persists); updates create a real object first and check
that a rejected change leaves it as it was.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import procs
from devstack.control_plane import ControlPlane
from devstack.stack import Stack
from devstack.tools import REPO

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="session")
def kube(stack: Stack) -> ControlPlane:
    """The control plane with our CRDs installed and served."""
    cp = stack.control_plane
    cp.kubectl("apply", "--server-side", "-f", str(REPO / "crd"))
    cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return cp


@pytest.fixture
def ns(kube: ControlPlane) -> Iterator[str]:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def dry_run_create(kube: ControlPlane, obj: Obj) -> tuple[bool, str]:
    """(accepted, server's answer): the object as defaulted by the server, or its error message."""
    result = kube.kubectl_result("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj))
    return result.returncode == 0, result.stdout if result.returncode == 0 else result.stderr


def example_documents() -> list[pytest.ParameterSet]:
    """Every custom resource in examples/*.yaml and in the README's yaml blocks (Helm values files
    there, such as examples/values-ha.yaml, are the chart tests' business)."""
    found = []
    for path in sorted((REPO / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and str(doc.get("apiVersion", "")).startswith("restate.dev/"):
                found.append(pytest.param(doc, id=f"{path.relative_to(REPO / 'examples')}:{doc['metadata']['name']}"))
    readme = (REPO / "README.md").read_text()
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, re.S)):
        for doc in yaml.safe_load_all(block):
            if doc and str(doc.get("apiVersion", "")).startswith("restate.dev/"):
                found.append(pytest.param(doc, id=f"README-{i}:{doc['metadata']['name']}"))
    return found


# Defaults of optional objects (spec.security) show only where the example sets that object.
EXPECTED_DEFAULTS: dict[str, dict[tuple[str, ...], Any]] = {
    "RestateCluster": {
        ("spec", "compute", "terminationGracePeriodSeconds"): 60,
        ("spec", "security", "allowOperatorAccessToAdmin"): True,
    },
    "RestateDeployment": {
        ("spec", "revisionHistoryLimit"): 10,
        ("spec", "deploymentMode"): "replicaset",
        ("spec", "restate", "drainDelaySeconds"): 300,
    },
    "RestateCloudEnvironment": {},
}


def dig(obj: Obj, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


@pytest.mark.parametrize("document", example_documents())
def test_example_is_accepted_and_shows_its_defaults(kube: ControlPlane, ns: str, document: Obj) -> None:
    if document["kind"] == "RestateDeployment":
        document = {**document, "metadata": {**document["metadata"], "namespace": ns}}
    accepted, answer = dry_run_create(kube, document)
    assert accepted, answer
    served = json.loads(answer)
    for path, value in EXPECTED_DEFAULTS[document["kind"]].items():
        try:
            dig(document, path)
        except KeyError:
            assert dig(served, path) == value, path  # not set by the example: the default shows


def test_the_examples_cover_every_kind() -> None:
    kinds = {p.values[0]["kind"] for p in example_documents()}  # type: ignore[index]
    assert kinds == {"RestateCluster", "RestateDeployment", "RestateCloudEnvironment"}


def cluster(name: str = "rsc-test") -> Obj:
    return {
        "apiVersion": "restate.dev/v1",
        "kind": "RestateCluster",
        "metadata": {"name": name},
        "spec": {
            "compute": {"image": "docker.io/restatedev/restate:1.7.12"},
            "storage": {"storageRequestBytes": 1024, "storageClassName": "standard"},
        },
    }


def deployment(name: str = "svc") -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "svc"}},
                "spec": {"containers": [{"name": "svc", "image": "svc:1"}]},
            },
            "restate": {"register": {"cluster": "restate-example"}},
        },
    }


def cloud_env(name: str = "env") -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateCloudEnvironment",
        "metadata": {"name": name},
        "spec": {
            "environmentId": "env_abc123",
            "region": "eu",
            "signingPublicKey": "publickeyv1_abc",
            "authentication": {"secret": {"name": "token", "key": "token"}},
        },
    }


def changed(base: Obj, change: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(base)
    change(obj)
    return obj


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        *parents, leaf = path.split(".")
        target = obj
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value

    return apply


def _delete(path: str) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        *parents, leaf = path.split(".")
        dig(obj, tuple(parents)).pop(leaf)

    return apply


INVALID_CREATES = [
    pytest.param(
        deployment(),
        _set("spec.restate.register", {"cluster": "a", "url": "http://restate:9070"}),
        "exactly one of cluster, cloud, service and url must be set",
        id="rsd-two-register-targets",
    ),
    pytest.param(
        deployment(),
        _set("spec.restate.register", {}),
        "exactly one of cluster, cloud, service and url must be set",
        id="rsd-no-register-target",
    ),
    pytest.param(
        deployment(),
        lambda o: o["spec"].update(deploymentMode="knative", autoscaling={"maxReplicas": 3}),
        "spec.autoscaling is only supported in replicaset mode (not knative)",
        id="rsd-knative-with-autoscaling",
    ),
    pytest.param(
        deployment(),
        _set("spec.replicas", -1),
        "spec.replicas in body should be greater than or equal to 0",
        id="rsd-negative-replicas",
    ),
    pytest.param(
        deployment(),
        _set("spec.replicas", "two"),
        "spec.replicas in body must be of type integer",
        id="rsd-replicas-wrong-type",
    ),
    pytest.param(
        deployment(),
        _set("spec.knative", {"tag": "V1_beta"}),
        "spec.knative.tag in body should match",
        id="rsd-bad-knative-tag",
    ),
    pytest.param(
        deployment("x" * 53),
        lambda o: None,
        "metadata.name: Too long: may not be more than 52",
        id="rsd-name-too-long",
    ),
    pytest.param(deployment(), _delete("spec.template"), "spec.template: Required value", id="rsd-no-template"),
    pytest.param(
        deployment(),
        _set("spec.restate.register", {"url": "restate:9070"}),
        "url must be an http(s) URL",
        id="rsd-register-url-not-a-url",
    ),
    pytest.param(
        deployment(),
        _set("spec.restate.servicePath", "restate"),
        "spec.restate.servicePath in body should match '^/'",
        id="rsd-service-path-without-slash",
    ),
    pytest.param(
        deployment(),
        _set("spec.template.spec.containers", [{"image": "svc:1"}]),
        "spec.template.spec.containers[0].name: Required value",
        id="rsd-container-without-name",
    ),
    pytest.param(
        deployment(),
        _set("spec.knative", {"minScale": 5, "maxScale": 2}),
        "minScale must not exceed maxScale",
        id="rsd-knative-min-above-max",
    ),
    pytest.param(
        deployment(),
        _set("spec.restate.tunnelMode", "in-process"),
        "tunnelMode only applies with register.cloud",
        id="rsd-tunnel-mode-without-cloud",
    ),
    pytest.param(
        cluster("Restate.Prod"), lambda o: None, "metadata.name in body should match", id="rsc-name-not-a-dns-label"
    ),
    pytest.param(cluster(), _delete("spec.compute.image"), "spec.compute.image: Required value", id="rsc-no-image"),
    pytest.param(
        cluster(),
        _set("spec.storage.storageRequestBytes", 0),
        "spec.storage.storageRequestBytes in body should be greater than or equal to 1",
        id="rsc-zero-storage",
    ),
    pytest.param(
        cluster(),
        _set(
            "spec.security",
            {
                "requestSigningPrivateKey": {
                    "version": "v1",
                    "secret": {"secretName": "k", "key": "k"},
                    "secretProvider": {"path": "/key"},
                }
            },
        ),
        "exactly one of secret and secretProvider must be set",
        id="rsc-signing-key-two-sources",
    ),
    pytest.param(
        cluster(),
        _set(
            "spec.security", {"requestSigningPrivateKey": {"version": "v2", "secret": {"secretName": "k", "key": "k"}}}
        ),
        "spec.security.requestSigningPrivateKey.version in body should match '^v1$'",
        id="rsc-signing-key-version",
    ),
    pytest.param(
        cluster(),
        _set("spec.compute.tolerations", [{"key": "k", "operator": "Maybe"}]),
        'spec.compute.tolerations[0].operator: Unsupported value: "Maybe"',
        id="rsc-toleration-bad-operator",
    ),
    pytest.param(
        cluster(),
        _set("spec.compute.imagePullPolicy", "Sometimes"),
        "spec.compute.imagePullPolicy in body should match",
        id="rsc-bad-pull-policy",
    ),
    pytest.param(
        cloud_env(),
        _set("spec.signingPublicKey", "ssh-rsa AAAA"),
        "spec.signingPublicKey in body should match '^publickeyv1_",
        id="rce-bad-public-key",
    ),
    pytest.param(
        cloud_env("e" * 57), lambda o: None, "metadata.name: Too long: may not be more than 56", id="rce-name-too-long"
    ),
    pytest.param(
        cloud_env(), _delete("spec.authentication"), "spec.authentication: Required value", id="rce-no-authentication"
    ),
]


@pytest.mark.parametrize(("base", "change", "message"), INVALID_CREATES)
def test_invalid_resource_is_rejected_with_a_clear_message(
    kube: ControlPlane, ns: str, base: Obj, change: Callable[[Obj], None], message: str
) -> None:
    obj = changed(base, change)
    if obj["kind"] == "RestateDeployment":
        obj["metadata"]["namespace"] = ns
    accepted, answer = dry_run_create(kube, obj)
    assert not accepted
    assert message in answer


def _apply(kube: ControlPlane, obj: Obj) -> tuple[bool, str]:
    result = kube.kubectl_result("apply", "--server-side", "-o", "json", "-f", "-", input=json.dumps(obj))
    return result.returncode == 0, result.stdout if result.returncode == 0 else result.stderr


INVALID_UPDATES = [
    pytest.param(
        cluster,
        _set("spec.storage.storageRequestBytes", 512),
        "storageRequestBytes cannot be decreased",
        ("spec", "storage", "storageRequestBytes"),
        id="rsc-storage-shrink",
    ),
    pytest.param(
        cluster,
        _set("spec.storage.storageClassName", "premium"),
        "storageClassName is immutable",
        ("spec", "storage", "storageClassName"),
        id="rsc-storage-class-changed",
    ),
    pytest.param(
        cluster,
        _delete("spec.storage.storageClassName"),
        "storageClassName is immutable",
        ("spec", "storage", "storageClassName"),
        id="rsc-storage-class-removed",
    ),
    pytest.param(
        deployment,
        _set("spec.deploymentMode", "knative"),
        "deploymentMode is immutable after creation",
        ("spec", "deploymentMode"),
        id="rsd-deployment-mode-changed",
    ),
]


@pytest.mark.parametrize(("make", "change", "message", "kept"), INVALID_UPDATES)
def test_invalid_change_is_rejected_and_the_stored_object_is_untouched(
    kube: ControlPlane,
    ns: str,
    make: Callable[[str], Obj],
    change: Callable[[Obj], None],
    message: str,
    kept: tuple[str, ...],
) -> None:
    original = make(f"upd-{uuid.uuid4().hex[:8]}")
    if original["kind"] == "RestateDeployment":
        original["metadata"]["namespace"] = ns
    accepted, answer = _apply(kube, original)
    assert accepted, answer
    stored_before = json.loads(answer)
    try:
        accepted, answer = _apply(kube, changed(original, change))
        assert not accepted
        assert message in answer
        name = original["metadata"]["name"]
        kind = original["kind"].lower()
        scope = ["-n", ns] if original["kind"] == "RestateDeployment" else []
        stored_after = json.loads(kube.kubectl("get", kind, name, *scope, "-o", "json"))
        assert dig(stored_after, kept) == dig(stored_before, kept)
        # The generation, not the resourceVersion: the operator may meanwhile add its finalizer or status.
        assert stored_after["metadata"]["generation"] == stored_before["metadata"]["generation"]
    finally:
        kube.kubectl("delete", "-f", "-", "--wait=false", input=json.dumps(original))


def test_storage_may_grow(kube: ControlPlane) -> None:
    original = cluster(f"grow-{uuid.uuid4().hex[:8]}")
    try:
        assert _apply(kube, original)[0]
        accepted, answer = _apply(kube, changed(original, _set("spec.storage.storageRequestBytes", 4096)))
        assert accepted, answer
        assert json.loads(answer)["spec"]["storage"]["storageRequestBytes"] == 4096
    finally:
        kube.kubectl("delete", "-f", "-", "--wait=false", input=json.dumps(original))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param("restatecluster.spec.compute.affinity", "podAntiAffinity", id="affinity"),
        pytest.param("restatedeployment.spec.restate.register", "Name of a RestateCluster", id="register"),
        pytest.param("restatecluster.spec.security.networkPeers.ingress", "ipBlock", id="network-peer"),
        pytest.param("restatedeployment.spec.template.spec.containers.ports", "containerPort", id="container"),
    ],
)
def test_kubectl_explain_describes_fields(kube: ControlPlane, field: str, expected: str) -> None:
    def explained() -> bool:
        return expected in kube.kubectl_result("explain", field).stdout

    procs.wait_until(f"kubectl explain {field}", explained, timeout=30)


def test_wide_output_shows_the_upstream_columns(kube: ControlPlane, ns: str) -> None:
    obj = deployment("wide")
    obj["metadata"]["namespace"] = ns
    assert _apply(kube, obj)[0]
    header, row = kube.kubectl("get", "rsd", "-n", ns, "-o", "wide").splitlines()
    columns = re.split(r"\s{2,}", header.strip())
    assert columns[:6] == ["NAME", "DESIRED", "UP-TO-DATE", "READY", "AVAILABLE", "AGE"], "upstream's, in place"
    assert columns[6:10] == ["LATEST", "DRAINING", "INVOCATIONS", "PAUSED"]
    assert columns[10:14] == ["DEPLOYMENT ID", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row.split()[0] == "wide"
    assert "svc:1" in row.split()


def test_kube_schema_snapshot_matches_the_served_openapi(kube: ControlPlane) -> None:
    from devstack import kube_schemas
    from services import crdgen

    version = json.loads(kube.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
    served = kube_schemas.snapshot(lambda path: kube.kubectl("get", "--raw", path), version)
    stored = json.loads(Path(crdgen.KUBE_OPENAPI).read_text())
    assert served == stored, "run `source .dev/env && python -m devstack.kube_schemas` and `make crds`"
