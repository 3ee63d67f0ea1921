"""The bad inputs a new user types, as one table: what each is, and where it must be caught.

Each case is a change to a valid resource and the place that catches it: `admission` (the
apiserver refuses it, through the CRD schema or a CEL rule, and its answer must contain `says`),
or `runtime` (admission cannot know: the operator must set Degraded and emit one Warning Event
whose message contains `says`; `tests/integration/test_bad_input.py` runs those). `ok` marks
unusual input that is valid and must be accepted (unicode where Kubernetes allows it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Obj = dict[str, Any]
Where = Literal["admission", "runtime", "ok"]


@dataclass(frozen=True)
class Case:
    id: str
    kind: Literal["RestateDeployment", "RestateCluster", "RestateCloudEnvironment"]
    change: Callable[[Obj], None]
    where: Where
    says: str = ""
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def rsd(name: str = "svc", namespace: str = "default", admin_url: str = "http://restate:9070") -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "svc",
                            "image": "svc:1",
                            "ports": [{"name": "restate", "containerPort": 9080}],
                        }
                    ]
                },
            },
            "restate": {"register": {"url": admin_url}, "drainDelaySeconds": 1},
        },
    }


def rsc(name: str = "rsc-bad") -> Obj:
    return {
        "apiVersion": "restate.dev/v1",
        "kind": "RestateCluster",
        "metadata": {"name": name},
        "spec": {
            "compute": {"image": "docker.io/restatedev/restate:1.7.12"},
            "storage": {"storageRequestBytes": 1024, "storageClassName": "standard"},
        },
    }


def rce(name: str = "env-bad") -> Obj:
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


BASES: dict[str, Callable[[], Obj]] = {
    "RestateDeployment": rsd,
    "RestateCluster": rsc,
    "RestateCloudEnvironment": rce,
}


def build(case: Case, **base: Any) -> Obj:
    obj = BASES[case.kind](**base) if base else BASES[case.kind]()
    if case.name is not None:
        obj["metadata"]["name"] = case.name
    case.change(obj)
    return obj


def put(path: str, value: Any) -> Callable[[Obj], None]:
    """Set a dotted path; `[0]` indexes a list (`spec.template.spec.containers[0].image`)."""

    def change(obj: Obj) -> None:
        *parents, leaf = path.split(".")
        target: Any = obj
        for key in parents:
            target = _step(target, key)
        container, key = _parent(target, leaf)
        container[key] = copy.deepcopy(value)

    return change


def drop(path: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        *parents, leaf = path.split(".")
        target: Any = obj
        for key in parents:
            target = _step(target, key)
        container, key = _parent(target, leaf)
        del container[key]

    return change


def _step(target: Any, key: str) -> Any:
    if "[" in key:
        name, index = key[:-1].split("[")
        return target[name][int(index)]
    return target.setdefault(key, {})


def _parent(target: Any, leaf: str) -> tuple[Any, Any]:
    """The container of `leaf` and the key in it (`ports[0]` is index 0 of the list `ports`)."""
    if "[" in leaf:
        name, index = leaf[:-1].split("[")
        return target[name], int(index)
    return target, leaf


def nothing(obj: Obj) -> None:
    """The base object as it is (the case is in its name)."""


C0 = "spec.template.spec.containers[0]"
PORT = f"{C0}.ports[0]"
RES = f"{C0}.resources"

CASES: list[Case] = [
    # --- malformed quantities (the apiserver parses every Quantity of the embedded PodSpec schema) ---
    Case(
        "quantity-cpu-word",
        "RestateDeployment",
        put(RES, {"requests": {"cpu": "lots"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    Case(
        "quantity-memory-GB",
        "RestateDeployment",
        put(RES, {"limits": {"memory": "1GB"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    Case(
        "quantity-two-dots",
        "RestateDeployment",
        put(RES, {"requests": {"cpu": "1.5.5"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    Case(
        "quantity-space",
        "RestateDeployment",
        put(RES, {"requests": {"memory": "512 Mi"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    Case(
        "quantity-unicode-digits",
        "RestateDeployment",
        put(RES, {"requests": {"cpu": "\u0661"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    Case(
        "quantity-negative",
        "RestateDeployment",
        put(RES, {"requests": {"memory": "-1Gi"}}),
        "runtime",
        "must be greater than or equal to 0",
    ),
    Case(
        "quantity-limit-below-request",
        "RestateDeployment",
        put(RES, {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        "runtime",
        "must be less than or equal to cpu limit",
    ),
    Case(
        "quantity-rsc-compute",
        "RestateCluster",
        put("spec.compute.resources", {"limits": {"memory": "2 GB"}}),
        "admission",
        "in body should match '^[+-]?([0-9]+",
    ),
    # --- images ---
    Case("image-empty", "RestateDeployment", put(f"{C0}.image", ""), "admission", "in body should match"),
    Case("image-missing", "RestateDeployment", drop(f"{C0}.image"), "runtime", "image: Required value"),
    Case(
        "image-with-space",
        "RestateDeployment",
        put(f"{C0}.image", "my image:1"),
        "admission",
        "in body should match '^\\S+$'",
    ),
    Case(
        "image-trailing-space",
        "RestateDeployment",
        put(f"{C0}.image", "svc:1 "),
        "admission",
        "in body should match '^\\S+$'",
    ),
    Case("image-not-a-string", "RestateDeployment", put(f"{C0}.image", 42), "admission", "must be of type string"),
    Case("image-rsc-empty", "RestateCluster", put("spec.compute.image", ""), "admission", "spec.compute.image"),
    # --- ports ---
    Case("port-zero", "RestateDeployment", put(f"{PORT}.containerPort", 0), "runtime", "containerPort"),
    Case("port-too-big", "RestateDeployment", put(f"{PORT}.containerPort", 70000), "runtime", "containerPort"),
    Case(
        "port-as-string",
        "RestateDeployment",
        put(f"{PORT}.containerPort", "9080"),
        "admission",
        "must be of type integer",
    ),
    Case(
        "port-missing-number",
        "RestateDeployment",
        put(PORT, {"name": "restate"}),
        "admission",
        "containerPort: Required value",
    ),
    Case(
        "port-name-too-long",
        "RestateDeployment",
        put(f"{PORT}.name", "restate-endpoint"),
        "runtime",
        "must be no more than 15 characters",
    ),
    Case("port-name-uppercase", "RestateDeployment", put(f"{PORT}.name", "Restate"), "runtime", "ports[0].name"),
    Case(
        "port-protocol-unknown",
        "RestateDeployment",
        put(f"{PORT}.protocol", "QUIC"),
        "admission",
        'Unsupported value: "QUIC"',
    ),
    Case(
        "port-duplicate-name",
        "RestateDeployment",
        put(f"{C0}.ports", [{"name": "restate", "containerPort": 9080}, {"name": "restate", "containerPort": 9081}]),
        "runtime",
        "Duplicate value",
    ),
    Case(
        "port-float", "RestateDeployment", put(f"{PORT}.containerPort", 9080.5), "admission", "must be of type integer"
    ),
    # --- selectors ---
    Case(
        "selector-does-not-match-template",
        "RestateDeployment",
        put("spec.selector", {"matchLabels": {"app": "other"}}),
        "runtime",
        "`selector` does not match template `labels`",
    ),
    Case(
        "selector-missing-label",
        "RestateDeployment",
        put("spec.selector", {"matchLabels": {"app": "svc", "tier": "backend"}}),
        "runtime",
        "`selector` does not match template `labels`",
    ),
    Case("selector-subset-is-fine", "RestateDeployment", put("spec.selector", {"matchLabels": {"app": "svc"}}), "ok"),
    Case(
        "selector-bad-operator",
        "RestateDeployment",
        put("spec.selector", {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["svc"]}]}),
        "runtime",
        "Like",
    ),
    Case(
        "selector-value-with-space",
        "RestateDeployment",
        put("spec.selector", {"matchLabels": {"app": "my svc"}}),
        "runtime",
        "my svc",
    ),
    Case(
        "label-key-with-space",
        "RestateDeployment",
        put("spec.template.metadata.labels", {"my label": "x"}),
        "runtime",
        "my label",
    ),
    Case(
        "label-value-too-long",
        "RestateDeployment",
        put("spec.template.metadata.labels", {"app": "v" * 64}),
        "runtime",
        "must be no more than 63 bytes",
    ),
    Case(
        "label-value-unicode",
        "RestateDeployment",
        put("spec.template.metadata.labels", {"app": "grüße"}),
        "runtime",
        "grüße",
    ),
    # --- names at every length limit ---
    Case("name-52-is-the-longest", "RestateDeployment", nothing, "ok", name="n" * 52),
    Case("name-53-too-long", "RestateDeployment", nothing, "admission", "may not be more than 52", name="n" * 53),
    Case("name-uppercase", "RestateDeployment", nothing, "admission", "a lowercase RFC 1123", name="Greeter"),
    Case(
        "name-with-dot",
        "RestateDeployment",
        nothing,
        "admission",
        "metadata.name in body should match",
        name="greeter.v1",
    ),
    Case(
        "name-starting-with-digit",
        "RestateDeployment",
        nothing,
        "admission",
        "metadata.name in body should match '^[a-z]",
        name="1greeter",
    ),
    Case("name-unicode", "RestateDeployment", nothing, "admission", "a lowercase RFC 1123", name="grüßer"),
    Case("rsc-name-63-is-the-longest", "RestateCluster", nothing, "ok", name="c" * 63),
    Case("rsc-name-64-too-long", "RestateCluster", nothing, "admission", "metadata.name", name="c" * 64),
    Case("rce-name-56-is-the-longest", "RestateCloudEnvironment", nothing, "ok", name="e" * 56),
    Case(
        "rce-name-57-too-long",
        "RestateCloudEnvironment",
        nothing,
        "admission",
        "may not be more than 56",
        name="e" * 57,
    ),
    Case(
        "container-name-too-long",
        "RestateDeployment",
        put(f"{C0}.name", "c" * 64),
        "runtime",
        "must be no more than 63 characters",
    ),
    Case("container-name-unicode", "RestateDeployment", put(f"{C0}.name", "grüß"), "runtime", "grüß"),
    # --- numbers and enums a person gets wrong ---
    Case("replicas-float", "RestateDeployment", put("spec.replicas", 1.5), "admission", "must be of type integer"),
    Case("replicas-negative", "RestateDeployment", put("spec.replicas", -1), "admission", "greater than or equal to 0"),
    Case(
        "replicas-beyond-int32",
        "RestateDeployment",
        put("spec.replicas", 3_000_000_000),
        "admission",
        "less than or equal to 2147483647",
    ),
    Case(
        "history-negative",
        "RestateDeployment",
        put("spec.revisionHistoryLimit", -1),
        "admission",
        "greater than or equal to 0",
    ),
    Case(
        "drain-delay-as-duration",
        "RestateDeployment",
        put("spec.restate.drainDelaySeconds", "10s"),
        "admission",
        "must be of type integer",
    ),
    Case(
        "drain-delay-negative",
        "RestateDeployment",
        put("spec.restate.drainDelaySeconds", -5),
        "admission",
        "greater than or equal to 0",
    ),
    Case(
        "registration-policy-unknown",
        "RestateDeployment",
        put("spec.restate.registrationPolicy", "Manual"),
        "admission",
        'Unsupported value: "Manual"',
    ),
    Case(
        "deployment-mode-unknown",
        "RestateDeployment",
        put("spec.deploymentMode", "Deployment"),
        "admission",
        'Unsupported value: "Deployment"',
    ),
    Case(
        "typo-in-field-name", "RestateDeployment", put("spec.replica", 2), "admission", 'unknown field "spec.replica"'
    ),
    Case(
        "containers-empty",
        "RestateDeployment",
        put("spec.template.spec.containers", []),
        "runtime",
        "containers: Required value",
    ),
    Case(
        "rsc-replicas-negative",
        "RestateCluster",
        put("spec.compute.replicas", -1),
        "admission",
        "spec.compute.replicas",
    ),
    Case(
        "rsc-storage-as-string",
        "RestateCluster",
        put("spec.storage.storageRequestBytes", "10Gi"),
        "admission",
        "must be of type integer",
    ),
    # --- where to register ---
    Case(
        "register-url-ftp",
        "RestateDeployment",
        put("spec.restate.register", {"url": "ftp://restate:9070"}),
        "admission",
        "url must be an http(s) URL",
    ),
    Case(
        "register-url-no-host",
        "RestateDeployment",
        put("spec.restate.register", {"url": "http://"}),
        "admission",
        "url must be an http(s) URL",
    ),
    Case(
        "register-url-with-space",
        "RestateDeployment",
        put("spec.restate.register", {"url": "http://rest ate:9070"}),
        "admission",
        "url must be an http(s) URL",
    ),
    Case(
        "register-url-bare-host",
        "RestateDeployment",
        put("spec.restate.register", {"url": "restate.restate.svc:9070"}),
        "admission",
        "url must be an http(s) URL",
    ),
    Case(
        "register-two-targets",
        "RestateDeployment",
        put("spec.restate.register", {"url": "http://r:9070", "cluster": "c"}),
        "admission",
        "exactly one of cluster, cloud, service and url",
    ),
    Case(
        "register-service-port-zero",
        "RestateDeployment",
        put("spec.restate.register", {"service": {"name": "restate", "namespace": "r", "port": 0}}),
        "admission",
        "greater than or equal to 1",
    ),
    Case(
        "register-service-no-namespace",
        "RestateDeployment",
        put("spec.restate.register", {"service": {"name": "restate"}}),
        "admission",
        "namespace: Required value",
    ),
    Case(
        "register-cluster-empty",
        "RestateDeployment",
        put("spec.restate.register", {"cluster": ""}),
        "admission",
        "should be at least 1 chars long",
    ),
    Case(
        "service-path-relative",
        "RestateDeployment",
        put("spec.restate.servicePath", "restate"),
        "admission",
        "should match '^/'",
    ),
    Case(
        "knative-tag-uppercase",
        "RestateDeployment",
        put("spec.knative", {"tag": "V1"}),
        "admission",
        "spec.knative.tag",
    ),
    Case(
        "knative-tag-too-long",
        "RestateDeployment",
        put("spec.knative", {"tag": "t" * 21}),
        "admission",
        "spec.knative.tag",
    ),
    Case(
        "knative-min-scale-negative",
        "RestateDeployment",
        put("spec.knative", {"minScale": -1}),
        "admission",
        "greater than or equal to 0",
    ),
    Case(
        "rce-public-key-wrong",
        "RestateCloudEnvironment",
        put("spec.signingPublicKey", "ssh-ed25519 AAAA"),
        "admission",
        "publickeyv1_",
    ),
    Case(
        "rce-no-secret-key",
        "RestateCloudEnvironment",
        put("spec.authentication", {"secret": {"name": "token"}}),
        "admission",
        "key: Required value",
    ),
    # --- unicode where Kubernetes allows it ---
    Case(
        "unicode-annotation-and-env",
        "RestateDeployment",
        put("spec.template.metadata.annotations", {"note": "grüße 🎉 日本"}),
        "ok",
    ),
    Case("unicode-env-value", "RestateDeployment", put(f"{C0}.env", [{"name": "GREETING", "value": "héllo ✓"}]), "ok"),
    Case(
        "env-name-with-equals",
        "RestateDeployment",
        put(f"{C0}.env", [{"name": "MY=VAR", "value": "x"}]),
        "runtime",
        "MY=VAR",
    ),
]
