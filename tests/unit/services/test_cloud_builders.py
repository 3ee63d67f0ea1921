"""What a RestateCloudEnvironment creates, field by field."""

from __future__ import annotations

import copy
from typing import Any

from services.builders import cloud
from services.settings import Settings
from tests import upstream

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
    assert [p["containerPort"] for p in container["ports"]] == [8080, 9070, 9090]
    assert container["image"] == "tunnel:1"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "edge"}
    service = cloud.tunnel_service(rce(remoteProxy=True), SETTINGS)
    assert [(p["name"], p.get("appProtocol")) for p in service["spec"]["ports"]] == [
        ("ingress", "kubernetes.io/h2c"),
        ("admin", "kubernetes.io/h2c"),
        ("health", None),
    ]


# --- Taking over from upstream (2.8.1) restarts no tunnel pod -------------------------------------
#
# What upstream 2.8.1 really created for RestateCloudEnvironment `env1` (tests/fixtures/upstream/):
# the tunnel Deployment's labels, selector and pod template, and the Service's labels and spec,
# minus what the apiserver allocates (clusterIP(s)).
RECORDED = "restatecloudenvironment.yaml"
UPSTREAM_ENV1 = upstream.find(RECORDED, "RestateCloudEnvironment", "env1")
UPSTREAM_SETTINGS = Settings(
    operator_namespace="restate-operator",
    tunnel_client_default_image="ghcr.io/restatedev/restate-cloud-tunnel-client:0.6.0",
)
UPSTREAM_LABELS = {"app.kubernetes.io/instance": "tunnel-env1", "app.kubernetes.io/name": "restate-cloud-tunnel-client"}
UPSTREAM_TEMPLATE = upstream.find(RECORDED, "Deployment", "tunnel-env1")["spec"]["template"]
UPSTREAM_SERVICE_SPEC = {
    k: v
    for k, v in upstream.find(RECORDED, "Service", "tunnel-env1")["spec"].items()
    if k not in ("clusterIP", "clusterIPs")
}


def with_apiserver_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """Our template as the apiserver stores it: exactly these defaults, and only where we leave them unset.

    - template metadata: an empty `annotations` map is not stored (omitempty);
    - pod: restartPolicy Always, dnsPolicy ClusterFirst, schedulerName default-scheduler, securityContext {};
    - container: terminationMessagePath /dev/termination-log, terminationMessagePolicy File,
      imagePullPolicy IfNotPresent (the image tag is not `latest`), ports[].protocol TCP;
    - readinessProbe: failureThreshold 3, periodSeconds 10, successThreshold 1, timeoutSeconds 1,
      httpGet.scheme HTTP;
    - secret volumes: defaultMode 420 (0644).
    """
    out = copy.deepcopy(template)
    meta = out["metadata"]
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    pod = out["spec"]
    for key, value in {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "securityContext": {},
    }.items():
        pod.setdefault(key, value)
    for container in pod["containers"]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        assert not container["image"].endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
        probe = container.get("readinessProbe")
        if probe:
            probe_defaults = {"failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}
            for field, number in probe_defaults.items():
                probe.setdefault(field, number)
            probe["httpGet"].setdefault("scheme", "HTTP")
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            volume["secret"].setdefault("defaultMode", 420)
    return out


def test_pod_template_is_upstreams_so_taking_over_restarts_no_tunnel() -> None:
    deployment = cloud.tunnel_deployment(UPSTREAM_ENV1, UPSTREAM_SETTINGS)
    assert with_apiserver_defaults(deployment["spec"]["template"]) == UPSTREAM_TEMPLATE


def test_deployment_and_service_metadata_match_upstreams_but_for_managed_by() -> None:
    deployment = cloud.tunnel_deployment(UPSTREAM_ENV1, UPSTREAM_SETTINGS)
    service = cloud.tunnel_service(UPSTREAM_ENV1, UPSTREAM_SETTINGS)
    owner = {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateCloudEnvironment",
        "name": "env1",
        "uid": "dc9c0c32-7873-46ab-9ecc-02ee110ff63e",
        "controller": True,
    }
    for obj in (deployment, service):
        meta = obj["metadata"]
        assert (meta["name"], meta["namespace"]) == ("tunnel-env1", "restate-operator")
        # Deliberate: managed-by on the objects (not the pods), which the watcher selects by.
        assert meta["labels"] == {**UPSTREAM_LABELS, "app.kubernetes.io/managed-by": "restate-operator"}
        assert not meta["annotations"]
        # Deliberate: blockOwnerDeletion, which upstream's kube-rs owner reference leaves unset.
        assert meta["ownerReferences"] == [{**owner, "blockOwnerDeletion": True}]
    assert deployment["spec"]["selector"] == {"matchLabels": UPSTREAM_LABELS}
    assert deployment["spec"]["replicas"] == 1
    assert service["spec"]["selector"] == UPSTREAM_SERVICE_SPEC["selector"]
    assert service["spec"]["ports"] == UPSTREAM_SERVICE_SPEC["ports"]
    assert set(service["spec"]) == {"selector", "ports"}, "the rest is the apiserver's default, as for upstream"


def test_remote_proxy_ports_and_env_overrides_follow_upstreams_order() -> None:
    spec = rce(remoteProxy=True, env=[{"name": "RUST_LOG", "value": "debug"}, {"name": "EXTRA", "value": "1"}])
    container = cloud.tunnel_deployment(spec, SETTINGS)["spec"]["template"]["spec"]["containers"][0]
    # The defaults the user does not override, in their order, then the user's entries as given.
    assert [e["name"] for e in container["env"]] == [
        "RESTATE_TUNNEL_NAME",
        "RESTATE_SIGNING_PUBLIC_KEY",
        "RESTATE_ENVIRONMENT_ID",
        "RESTATE_CLOUD_REGION",
        "RESTATE_BEARER_TOKEN_FILE",
        "RESTATE_REMOTE_PROXY",
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
        "RUST_LOG",
        "EXTRA",
    ]
    spec = rce(remoteProxy=True, env=[{"name": "EXTRA", "value": "1"}, {"name": "RESTATE_CLOUD_REGION", "value": "x"}])
    container = cloud.tunnel_deployment(spec, SETTINGS)["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in container["env"]][-3:] == ["RUST_LOG", "EXTRA", "RESTATE_CLOUD_REGION"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("ingress", 8080),
        ("admin", 9070),
        ("health", 9090),
    ]
