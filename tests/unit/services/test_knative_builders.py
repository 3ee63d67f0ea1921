"""What a RestateDeployment creates in Knative mode (services/builders/knative.py), as upstream 2.8 writes it.

Covered: tags (explicit, template hash), names, the Configuration's and Route's labels, annotations
and owners (kubectl's and the rollout-duration annotation kept off the Configuration), the scale
annotations (min-scale 0 by default, user annotations win), the template kept verbatim, the
RestateCluster allow label, and every port validation error with what the user sees.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from services import errors
from services.builders import deployment, knative

UID = "0b5a3c0e-7c55-4f0e-9d5b-1d6c8e2f9a10"


def rsd(**spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {
            "name": "greeter",
            "namespace": "team",
            "uid": UID,
            "labels": {"team": "a"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "serving.knative.dev/rollout-duration": "0s",
                "note": "kept",
            },
        },
        "spec": {
            "deploymentMode": "knative",
            "template": {
                "metadata": {
                    "labels": {"app": "greeter"},
                    "annotations": {"autoscaling.knative.dev/initial-scale": "2"},
                },
                "spec": {
                    "containers": [
                        {"name": "svc", "image": "greeter:1", "ports": [{"name": "h2c", "containerPort": 9080}]}
                    ]
                },
            },
            "restate": {"register": {"url": "http://restate:9070"}},
            **spec,
        },
    }
    return obj


def test_an_explicit_tag_names_the_version_and_a_missing_one_is_the_template_hash() -> None:
    assert knative.tag(rsd(knative={"tag": "v1"})) == "v1"
    auto = rsd()
    assert knative.tag(auto) == deployment.version_hash(auto)
    assert knative.tag(auto, 1) == deployment.version_hash(auto, 1) != knative.tag(auto)
    assert knative.name(auto, "v1") == "greeter-v1"


def test_the_configuration_carries_upstreams_metadata_and_the_template_verbatim() -> None:
    obj = rsd(knative={"tag": "v1", "maxScale": 10, "target": 50}, restate={"register": {"cluster": "prod"}})
    config = knative.configuration(obj, "v1")
    meta = config["metadata"]
    assert (config["apiVersion"], config["kind"], meta["name"], meta["namespace"]) == (
        "serving.knative.dev/v1",
        "Configuration",
        "greeter-v1",
        "team",
    )
    assert meta["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "restate-operator"}
    assert meta["annotations"] == {"note": "kept", "restate.dev/deployment": "greeter", "restate.dev/tag": "v1"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "restate.dev/v1beta1",
            "kind": "RestateDeployment",
            "name": "greeter",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    template = config["spec"]["template"]
    assert template["spec"] == obj["spec"]["template"]["spec"]
    assert template["metadata"]["labels"] == {
        "app": "greeter",
        "app.kubernetes.io/managed-by": "restate-operator",
        "allow.restate.dev/prod": "true",
    }
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": "10",
        "autoscaling.knative.dev/target": "50",
        "autoscaling.knative.dev/initial-scale": "2",
        "restate.dev/deployment": "greeter",
    }


def test_an_auto_tag_records_the_template_to_detect_collisions() -> None:
    obj = rsd()
    config = knative.configuration(obj, knative.tag(obj))
    assert config["metadata"]["annotations"][deployment.TEMPLATE_ANNOTATION] == deployment.template_json(obj)


def test_user_scale_annotations_win_over_spec_knative() -> None:
    obj = rsd(knative={"minScale": 1})
    obj["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = "3"
    annotations = knative.configuration(obj, "v1")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "3"


def test_the_route_is_cluster_local_owned_by_its_configuration_and_sends_everything_to_the_latest() -> None:
    route = knative.route(rsd(), "v1", "cfg-uid")
    meta = route["metadata"]
    assert meta["labels"] == {
        "team": "a",
        "app.kubernetes.io/managed-by": "restate-operator",
        "networking.knative.dev/visibility": "cluster-local",
    }
    assert meta["annotations"] == {
        "serving.knative.dev/rollout-duration": "0s",
        "note": "kept",
        "restate.dev/deployment": "greeter",
    }
    assert meta["ownerReferences"][0] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "name": "greeter-v1",
        "uid": "cfg-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert route["spec"]["traffic"] == [{"configurationName": "greeter-v1", "latestRevision": True, "percent": 100}]


def test_initial_scale_comes_from_the_template_else_one() -> None:
    assert knative.initial_scale(rsd()) == 2
    plain = rsd()
    del plain["spec"]["template"]["metadata"]["annotations"]
    assert knative.initial_scale(plain) == 1


def containers(*specs: dict[str, Any]) -> dict[str, Any]:
    obj = rsd()
    obj["spec"]["template"]["spec"]["containers"] = list(specs)
    return obj


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(
            containers(
                {"name": "a", "image": "x", "ports": [{"name": "h2c", "containerPort": 1}]},
                {"name": "b", "image": "y", "ports": [{"name": "h2c", "containerPort": 2}]},
            ),
            "only one container may define ports in Knative mode (a, b do)",
            id="two-containers-with-ports",
        ),
        pytest.param(containers({"name": "a", "image": "x"}), "no container defines a port", id="no-port"),
        pytest.param(
            containers(
                {"name": "a", "image": "x", "ports": [{"name": "grpc", "containerPort": 1}, {"containerPort": 2}]}
            ),
            "spec.template.spec.containers[a].ports: no port is named h2c… or http1… (found 'grpc', an unnamed port)",
            id="wrong-port-name",
        ),
    ],
)
def test_a_template_knative_cannot_route_is_refused_with_what_to_change(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=re.escape(message)) as raised:
        knative.validate(obj)
    assert raised.value.reason == "InvalidRestateConfig"


@pytest.mark.parametrize("name", ["h2c", "h2c-restate", "http1", "http1-legacy"])
def test_h2c_and_http1_ports_are_accepted(name: str) -> None:
    obj = containers(
        {"name": "a", "image": "x", "ports": [{"name": name, "containerPort": 9080}]}, {"name": "side", "image": "y"}
    )
    knative.validate(copy.deepcopy(obj))
