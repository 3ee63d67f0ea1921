"""What a RestateDeployment creates per version, and where it registers.

The version names, labels and Services are checked against what restate-operator 2.8.1 really
created (the recorded fixtures: tests/fixtures/upstream/), so taking a cluster
over from it finds every object under the name it expects and changes no pod template.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services import errors
from services.builders import common
from services.builders import deployment as build
from services.settings import Settings

SETTINGS = Settings(cluster_dns="cluster.local")


def rsd(**restate: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": "svc", "namespace": "team", "uid": "u1", "annotations": {"a": "b"}},
        "spec": {
            "replicas": 2,
            "minReadySeconds": 5,
            "selector": {
                "matchLabels": {"app": "svc"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}],
            },
            "template": {
                "metadata": {"labels": {"app": "svc"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "svc:1",
                            "ports": [
                                {"name": "metrics", "containerPort": 9090},
                                {"name": "restate", "containerPort": 9081},
                            ],
                        }
                    ]
                },
            },
            "restate": {"register": {"cluster": "prod"}, **restate},
        },
    }


def upstream_rsd(name: str, template: dict[str, Any], **restate: Any) -> dict[str, Any]:
    """A RestateDeployment as in upstream-fixtures/specs.yaml (namespace and URL are not hashed)."""
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name, "namespace": "shop", "uid": "6009e180", "labels": {"team": "shop"}},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "restate": {"register": {"url": "http://127.0.0.1:53553"}, "drainDelaySeconds": 600, **restate},
        },
    }


def upstream_template(name: str, image: str, note: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": {"app": name}}
    if note:
        metadata["annotations"] = {"example.com/note": note}
    port = {"name": "restate", "containerPort": 9080}
    return {"metadata": metadata, "spec": {"containers": [{"name": name, "image": image, "ports": [port]}]}}


VERSIONED = "restate-operator.local/examples/versioned"
HELLO = "restate-operator.local/examples/hello:0.1"
# (RestateDeployment, the ReplicaSet upstream created for it, its restate.dev/pod-template annotation)
UPSTREAM_VERSIONS = [
    pytest.param(
        upstream_rsd("greeter", upstream_template("greeter", f"{VERSIONED}:v1")),
        "greeter-479f58c8d7",
        '{"metadata":{"labels":{"app":"greeter"}},"spec":{"containers":[{"image":"restate-operator.local/examples/'
        'versioned:v1","name":"greeter","ports":[{"containerPort":9080,"name":"restate"}]}]}}',
        id="greeter-v1",
    ),
    pytest.param(
        upstream_rsd("greeter", upstream_template("greeter", f"{VERSIONED}:v2")),
        "greeter-558cd58fb5",
        '{"metadata":{"labels":{"app":"greeter"}},"spec":{"containers":[{"image":"restate-operator.local/examples/'
        'versioned:v2","name":"greeter","ports":[{"containerPort":9080,"name":"restate"}]}]}}',
        id="greeter-v2",
    ),
    pytest.param(
        upstream_rsd("hello", upstream_template("hello", HELLO, note="one")),
        "hello-9547b4f8f6",
        '{"metadata":{"annotations":{"example.com/note":"one"},"labels":{"app":"hello"}},"spec":{"containers":'
        '[{"image":"restate-operator.local/examples/hello:0.1","name":"hello","ports":[{"containerPort":9080,'
        '"name":"restate"}]}]}}',
        id="hello-one",
    ),
    pytest.param(
        upstream_rsd("hello", upstream_template("hello", HELLO, note="two")),
        "hello-4bc574c475",
        '{"metadata":{"annotations":{"example.com/note":"two"},"labels":{"app":"hello"}},"spec":{"containers":'
        '[{"image":"restate-operator.local/examples/hello:0.1","name":"hello","ports":[{"containerPort":9080,'
        '"name":"restate"}]}]}}',
        id="hello-two",
    ),
]


@pytest.mark.parametrize(("obj", "name", "annotation"), UPSTREAM_VERSIONS)
def test_version_names_and_template_annotation_are_upstreams(obj: dict[str, Any], name: str, annotation: str) -> None:
    hash_ = build.version_hash(obj)
    assert build.version_name(obj, hash_) == name
    assert build.template_json(obj) == annotation


@pytest.mark.parametrize(
    ("name", "template", "selector"),
    [
        ("greeter", upstream_template("greeter", f"{VERSIONED}:v2"), "app=greeter,pod-template-hash=558cd58fb5"),
        ("hello", upstream_template("hello", HELLO, note="two"), "app=hello,pod-template-hash=4bc574c475"),
    ],
)
def test_label_selector_is_upstreams(name: str, template: dict[str, Any], selector: str) -> None:
    obj = upstream_rsd(name, template)
    assert build.label_selector(obj, build.version_hash(obj)) == selector


def test_empty_template_hashes_as_metadata_null() -> None:
    obj = upstream_rsd("x", {})
    assert build.template_json(obj) == '{"metadata":null}'
    assert build.version_hash(obj) == "d9c99cfb77"


def test_template_json_keeps_only_what_upstream_serialises() -> None:
    template = {
        "metadata": {"labels": {"b": "ü", "a": "1"}, "annotations": None, "name": "dropped"},
        "spec": {"containers": [{"name": "c", "image": "i", "env": [{"value": "é", "name": "E"}]}]},
    }
    assert build.template_json(upstream_rsd("x", template)) == (
        '{"metadata":{"labels":{"a":"1","b":"ü"}},"spec":{"containers":[{"env":[{"name":"E","value":"é"}],'
        '"image":"i","name":"c"}]}}'
    )
    assert build.template_json(upstream_rsd("x", {"metadata": {}})) == '{"metadata":{}}'


def test_hash_inputs_are_concatenated_raw_and_collision_zero_counts() -> None:
    obj = upstream_rsd("greeter", upstream_template("greeter", f"{VERSIONED}:v2"))
    base = build.version_hash(obj)
    assert build.version_hash(obj, collision_count=0) != base, "a collision count of 0 is hashed too (upstream)"
    assert build.version_hash(upstream_rsd("greeter", obj["spec"]["template"], servicePath="")) == base
    assert build.version_hash(upstream_rsd("greeter", obj["spec"]["template"], useHttp11=False)) == base
    assert len({base, *(build.version_hash(obj, collision_count=n) for n in range(50))}) == 51


def test_hash_is_stable_dns_safe_and_changes_with_what_restate_sees() -> None:
    base = build.version_hash(rsd())
    assert base == build.version_hash(rsd())
    assert base.isalnum()
    assert base.islower()
    assert len(base) <= 10
    changed_image = rsd()
    changed_image["spec"]["template"]["spec"]["containers"][0]["image"] = "svc:2"
    others = {
        build.version_hash(changed_image),
        build.version_hash(rsd(servicePath="/restate")),
        build.version_hash(rsd(useHttp11=True)),
        build.version_hash(rsd(), collision_count=1),
    }
    assert base not in others
    assert len(others) == 4
    scaled = rsd()
    scaled["spec"]["replicas"] = 7
    assert build.version_hash(scaled) == base, "replicas do not make a new version"


def test_replica_set_is_the_one_upstream_creates() -> None:
    """Same labels, annotations, selector and pod template as upstream's greeter-558cd58fb5."""
    obj = upstream_rsd("greeter", upstream_template("greeter", f"{VERSIONED}:v2"))
    obj["metadata"]["annotations"] = {common.LAST_APPLIED: "{}"}
    rs = build.replica_set(obj, "558cd58fb5", replicas=1)
    assert rs["metadata"]["name"] == "greeter-558cd58fb5"
    assert rs["metadata"]["labels"] == {
        "app": "greeter",
        "app.kubernetes.io/managed-by": "restate-operator",
        "pod-template-hash": "558cd58fb5",
        "restate.dev/owned-by": "greeter",
    }, "no restate.dev/latest: a label that moves between versions would mean writing old ReplicaSets"
    assert rs["metadata"]["annotations"] == {build.TEMPLATE_ANNOTATION: build.template_json(obj)}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "greeter", "pod-template-hash": "558cd58fb5"}}
    assert rs["spec"]["template"] == {
        "metadata": {"labels": {"app": "greeter", "pod-template-hash": "558cd58fb5"}},
        "spec": obj["spec"]["template"]["spec"],
    }
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "RestateDeployment"


def selects(selector: str, labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in (term.split("=", 1) for term in selector.split(",")))


def test_a_pass_lists_its_own_replica_sets_not_its_neighbours() -> None:
    """At 500 resources in one namespace, listing by our label alone read 500 ReplicaSets a pass."""
    template = upstream_template("greeter", f"{VERSIONED}:v1")
    greeter, hello = upstream_rsd("greeter", template), upstream_rsd("hello", template)
    selector = build.children_selector("greeter")
    assert selector == "app.kubernetes.io/managed-by=restate-operator,restate.dev/owned-by=greeter"
    assert selects(selector, build.replica_set(greeter, "479f58c8d7", replicas=1)["metadata"]["labels"])
    assert not selects(selector, build.replica_set(hello, "479f58c8d7", replicas=1)["metadata"]["labels"])


def test_version_service_is_the_one_upstream_creates() -> None:
    obj = upstream_rsd("greeter", upstream_template("greeter", f"{VERSIONED}:v2"))
    svc = build.version_service(obj, "558cd58fb5", "rs-uid")
    assert svc["metadata"]["labels"] == {
        "team": "shop",
        "app.kubernetes.io/managed-by": "restate-operator",
        "restate.dev/owned-by": "greeter",
    }
    assert svc["metadata"]["annotations"] == {}
    assert svc["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "greeter-558cd58fb5",
            "uid": "rs-uid",
            "controller": True,
        }
    ]
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"app": "greeter", "pod-template-hash": "558cd58fb5"},
        "ports": [{"name": "restate", "port": 9080, "protocol": "TCP", "targetPort": 9080}],
    }


@pytest.mark.parametrize("http11", [True, None], ids=["useHttp11", "default"])
def test_services_never_claim_h2c(http11: bool | None) -> None:
    """An HTTP/1.1-only SDK server must not be announced as h2c to meshes and gateways."""
    obj = rsd(useHttp11=http11) if http11 else rsd()
    for svc in (build.version_service(obj, "abc", "u"), build.stable_service(obj, "abc")):
        assert "appProtocol" not in svc["spec"]["ports"][0]


def test_without_a_selector_only_the_hash_selects_as_upstream() -> None:
    obj = rsd()
    del obj["spec"]["selector"]
    rs = build.replica_set(obj, "abc", replicas=1)
    assert rs["spec"]["selector"] == {"matchLabels": {"pod-template-hash": "abc"}}
    assert build.version_service(obj, "abc", "u")["spec"]["selector"] == {"pod-template-hash": "abc"}
    assert build.label_selector(obj, "abc") == "pod-template-hash=abc"


def test_stable_service_is_ours_only_when_this_resource_controls_it() -> None:
    obj = rsd()
    assert build.controlled_by(build.stable_service(obj, "abc"), obj)
    users = {"metadata": {"name": "svc", "ownerReferences": [{"uid": "u1"}]}}  # a reference, not a controller
    assert not build.controlled_by(users, obj)
    assert not build.controlled_by({"metadata": {"name": "svc"}}, obj)


def test_replica_set_carries_hash_selector_cluster_label_and_template_annotation() -> None:
    obj = rsd()
    hash_ = build.version_hash(obj)
    rs = build.replica_set(obj, hash_, replicas=2)
    assert rs["metadata"]["name"] == f"svc-{hash_}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "svc", "pod-template-hash": hash_}
    assert rs["spec"]["selector"]["matchExpressions"] == obj["spec"]["selector"]["matchExpressions"]
    pod_labels = rs["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app": "svc", "pod-template-hash": hash_, "allow.restate.dev/prod": "true"}
    assert rs["metadata"]["labels"]["restate.dev/owned-by"] == "svc"
    assert rs["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "restate-operator"
    assert rs["metadata"]["annotations"][build.TEMPLATE_ANNOTATION] == build.template_json(obj)
    assert rs["spec"]["minReadySeconds"] == 5
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_version_service_targets_the_port_named_restate() -> None:
    obj = rsd()
    svc = build.version_service(obj, "abc", "u")
    assert svc["spec"]["selector"] == {"app": "svc", "pod-template-hash": "abc"}
    assert svc["spec"]["ports"][0]["port"] == 9080
    assert svc["spec"]["ports"][0]["targetPort"] == 9081
    assert build.stable_service(obj, "abc")["metadata"]["name"] == "svc"


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([], 9080),
        ([{"containerPort": 8000}], 8000),
        ([{"name": "http", "containerPort": 8000}, {"name": "restate", "containerPort": 9000}], 9000),
    ],
)
def test_target_port_discovery(ports: list[dict[str, Any]], expected: int) -> None:
    assert build.target_port({"containers": [{"name": "c", "ports": ports}]}) == expected


def test_label_selector_names_only_the_latest_version() -> None:
    assert build.label_selector(rsd(), "abc") == "app=svc,pod-template-hash=abc,tier in (x,y)"
    obj = rsd()
    obj["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "NotIn", "values": ["y", "x", "y"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "zone", "operator": "Exists"},
    ]
    assert build.label_selector(obj, "abc") == "app=svc,pod-template-hash=abc,tier notin (x,y),!canary,zone"
    obj["spec"]["selector"]["matchExpressions"] = [{"key": "tier", "operator": "Near"}]
    assert build.label_selector(obj, "abc") is None


def test_service_url_and_admin_urls_keep_paths() -> None:
    assert build.service_url(rsd(servicePath="/r"), "abc", SETTINGS) == "http://svc-abc.team.svc.cluster.local:9080/r"
    assert build.admin_endpoint(rsd(), SETTINGS) == build.AdminEndpoint("http://restate.prod.svc.cluster.local:9070")
    service = rsd()
    service["spec"]["restate"]["register"] = {
        "service": {"name": "r", "namespace": "ops", "port": 19070, "path": "/admin/"}
    }
    assert build.admin_endpoint(service, SETTINGS).url == "http://r.ops.svc.cluster.local:19070/admin"
    url = copy.deepcopy(service)
    url["spec"]["restate"]["register"] = {"url": "https://restate.example.com/prefix/"}
    assert build.admin_endpoint(url, SETTINGS) == build.AdminEndpoint("https://restate.example.com/prefix")


def test_autoscaler_targets_the_version_and_never_scales_it_to_zero() -> None:
    assert build.version_autoscaler(rsd(), "abc") is None
    obj = rsd()
    obj["spec"]["autoscaling"] = {"maxReplicas": 5, "minReplicas": 0, "scaleTargetRef": {"name": "elsewhere"}}
    hpa = build.version_autoscaler(obj, "abc")
    assert hpa is not None
    assert hpa["metadata"]["name"] == "svc-abc"
    assert hpa["spec"] == {
        "maxReplicas": 5,
        "minReplicas": 1,
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "svc-abc"},
    }


def test_a_template_too_big_for_its_annotation_is_refused_before_anything_is_applied() -> None:
    obj = rsd()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * 300_000}]
    with pytest.raises(
        errors.InvalidSpec, match=r"spec\.template is 293 KiB as JSON.*256 KiB: make the template smaller"
    ):
        build.replica_set(obj, "abc", replicas=1)
