"""What a RestateDeployment creates per version, and where it registers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

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


def test_replica_set_carries_hash_selector_cluster_label_and_template_annotation() -> None:
    obj = rsd()
    hash_ = build.version_hash(obj)
    rs = build.replica_set(obj, hash_, replicas=2, latest=True)
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
    svc = build.version_service(obj, "abc")
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


def test_service_url_and_admin_urls_keep_paths() -> None:
    assert build.service_url(rsd(servicePath="/r"), "abc", SETTINGS) == "http://svc-abc.team.svc.cluster.local:9080/r"
    assert build.admin_url(rsd(), SETTINGS) == "http://restate.prod.svc.cluster.local:9070"
    service = rsd()
    service["spec"]["restate"]["register"] = {
        "service": {"name": "r", "namespace": "ops", "port": 19070, "path": "/admin/"}
    }
    assert build.admin_url(service, SETTINGS) == "http://r.ops.svc.cluster.local:19070/admin"
    url = copy.deepcopy(service)
    url["spec"]["restate"]["register"] = {"url": "https://restate.example.com/prefix/"}
    assert build.admin_url(url, SETTINGS) == "https://restate.example.com/prefix"
    cloud = copy.deepcopy(service)
    cloud["spec"]["restate"]["register"] = {"cloud": "env"}
    with pytest.raises(build.UnsupportedTarget, match=r"register\.cloud is not supported yet"):
        build.admin_url(cloud, SETTINGS)


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
