"""What a RestateCloudEnvironment creates, field by field."""

from __future__ import annotations

from typing import Any

from services.builders import cloud
from services.settings import Settings

SETTINGS = Settings(operator_namespace="ops", tunnel_client_default_image="tunnel:default")


def rce(**tunnel: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "environmentId": "env_abc",
        "region": "eu",
        "signingPublicKey": "publickeyv1_k",
        "authentication": {"secret": {"name": "tok", "key": "token"}},
    }
    if tunnel:
        spec["tunnel"] = tunnel
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateCloudEnvironment",
        "metadata": {
            "name": "prod",
            "uid": "uid-1",
            "labels": {"team": "a"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
        },
        "spec": spec,
    }


def test_deployment_defaults() -> None:
    deployment = cloud.tunnel_deployment(rce(), SETTINGS)
    meta = deployment["metadata"]
    assert (meta["name"], meta["namespace"]) == ("tunnel-prod", "ops")
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "restate-operator"
    assert meta["labels"]["team"] == "a"
    assert meta["annotations"] == {"note": "x"}
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "tunnel:default"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RESTATE_TUNNEL_NAME"] == "uid-1"
    assert env["RESTATE_REMOTE_PROXY"] == "false"
    assert [p["containerPort"] for p in container["ports"]] == [9090]
    assert container["resources"] == cloud.DEFAULT_RESOURCES
    assert pod["volumes"][0]["secret"] == {"secretName": "tok", "items": [{"key": "token", "path": "bearer-token"}]}
    assert pod["terminationGracePeriodSeconds"] == 310
    assert deployment["spec"]["replicas"] == 1


def test_tunnel_overrides_replace_defaults_by_name_and_expose_proxy_ports() -> None:
    deployment = cloud.tunnel_deployment(
        rce(
            remoteProxy=True,
            replicas=3,
            image="tunnel:1",
            env=[{"name": "RUST_LOG", "value": "debug"}, {"name": "EXTRA", "value": "1"}],
            nodeSelector={"pool": "edge"},
        ),
        SETTINGS,
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = [(e["name"], e["value"]) for e in container["env"]]
    assert ("RUST_LOG", "debug") in env
    assert ("RUST_LOG", "info") not in env
    assert env[-1] == ("EXTRA", "1")
    assert [p["containerPort"] for p in container["ports"]] == [9090, 8080, 9070]
    assert container["image"] == "tunnel:1"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "edge"}
    service = cloud.tunnel_service(rce(remoteProxy=True), SETTINGS)
    assert [(p["name"], p.get("appProtocol")) for p in service["spec"]["ports"]] == [
        ("health", None),
        ("ingress", "kubernetes.io/h2c"),
        ("admin", "kubernetes.io/h2c"),
    ]
