"""Pure RestateCluster builders: hashes, peers, collisions, env order, quantities, and the pod
template upstream's operator wrote (taking a cluster over must not roll its nodes)."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest

from services import errors
from services.builders.cluster import compute, network_policies, quantity
from services.builders.cluster.common import ALLOW_SCALE_DOWN, config_hash
from services.settings import Settings
from tests.integration import test_migration_cluster as recorded

SETTINGS = Settings(operator_namespace="ops", operator_label_name="app", operator_label_value="operator")


def rsc(**compute_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1",
        "kind": "RestateCluster",
        "metadata": {"name": "prod", "uid": "u1"},
        "spec": {
            "config": "x = 1",
            "compute": {"image": "restate:1", **compute_fields},
            "storage": {"storageRequestBytes": 1024},
        },
    }


def test_config_hash_is_short_hex_and_content_addressed() -> None:
    assert config_hash("a") == config_hash("a")
    assert config_hash("a") != config_hash("b")
    assert all(c in "0123456789abcdef" for c in config_hash(""))
    assert compute.config_map_name(rsc()) == f"restate-config-{config_hash('x = 1')}"


@pytest.mark.parametrize(
    ("peers", "expected"),
    [(None, [{"op": 1}]), ([], []), ([{"p": 1}], [{"p": 1}, {"op": 1}])],
    ids=["unset-becomes-only-the-operator", "empty-stays-everyone", "list-gets-the-operator"],
)
def test_adding_a_peer_follows_unset_empty_list(peers: list[Any] | None, expected: list[Any]) -> None:
    assert network_policies.with_peer(peers, {"op": 1}) == expected


def test_operator_peer_only_when_its_labels_are_known() -> None:
    assert network_policies.operator_peer(Settings()) is None
    peer = network_policies.operator_peer(SETTINGS)
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
        "podSelector": {"matchLabels": {"app": "operator"}},
    }


def test_auto_provision_lets_the_operator_reach_the_node_port_but_empty_peers_stay_open() -> None:
    obj = rsc()
    obj["spec"]["cluster"] = {"autoProvision": True}
    obj["spec"]["security"] = {"networkPeers": {"node": []}}
    policies = {p["metadata"]["name"]: p["spec"] for p in network_policies.network_policies(obj, SETTINGS)}
    assert policies["allow-metrics-access"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 5122}]}]


def test_collisions_name_the_duplicates() -> None:
    with pytest.raises(errors.InvalidSpec, match="volume name"):
        compute.statefulset(rsc(extraVolumes=[{"name": "tmp", "emptyDir": {}}]), SETTINGS, replicas=1)
    with pytest.raises(errors.InvalidSpec, match="/config"):
        compute.statefulset(
            rsc(
                extraVolumes=[{"name": "x", "emptyDir": {}}], extraVolumeMounts=[{"name": "x", "mountPath": "/config"}]
            ),
            SETTINGS,
            replicas=1,
        )


def test_signing_key_and_trusted_cas_add_volumes_env_and_a_rollout_annotation() -> None:
    obj = rsc()
    obj["spec"]["security"] = {
        "requestSigningPrivateKey": {"version": "v1", "secret": {"secretName": "k", "key": "pem"}},
        "trustedCaCerts": [{"secretName": "ca", "key": "crt"}],
    }
    sts = compute.statefulset(obj, SETTINGS, replicas=3)
    pod = sts["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"] == "/signing-key/private.pem"
    assert env["SSL_CERT_FILE"] == "/combined-certs/ca-certificates.crt"
    assert pod["initContainers"][0]["name"] == "combine-ca-certs"
    assert pod["initContainers"][0]["image"] == "alpine:3.21"
    assert "restate.dev/trusted-ca-certs" in sts["spec"]["template"]["metadata"]["annotations"]
    assert sts["spec"]["replicas"] == 3
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {  # upstream's: the file mode on the item, no defaultMode
        "request-signing-private-key-secret": {
            "secretName": "k",
            "items": [{"key": "pem", "path": "private.pem", "mode": 0o400}],
        },
        "trusted-ca-0": {"secretName": "ca", "items": [{"key": "crt", "path": "ca.pem", "mode": 0o444}]},
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("10G", 10**10, id="decimal-suffix"),
        pytest.param("10000000000", 10**10, id="plain"),
        pytest.param(2147483648, 2 * 2**30, id="int"),
        pytest.param("2Gi", 2 * 2**30, id="binary-suffix"),
        pytest.param("1.5Ki", 1536, id="fraction-binary"),
        pytest.param("1e3", 1000, id="exponent"),
        pytest.param("1E3", 1000, id="exponent-upper-not-exa"),
        pytest.param("2E", 2 * 10**18, id="exa"),
        pytest.param("100m", Fraction(1, 10), id="milli"),
        pytest.param(".5", Fraction(1, 2), id="leading-dot"),
        pytest.param("+1Mi", 2**20, id="plus-sign"),
    ],
)
def test_quantity_is_parsed_to_its_exact_value(text: str | int, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "G", "1.2.3", "1Gb", "1 G", "e3", "1ki", "Gi1"])
def test_malformed_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity.parse(text)


def test_quantities_compare_by_value_as_the_apiserver_rewrites_them() -> None:
    assert quantity.same("10G", 10_000_000_000)
    assert quantity.same("2Gi", "2147483648")
    assert not quantity.same("10Gi", 10_000_000_000)
    assert not quantity.same(None, 1)
    assert not quantity.same("bogus", 1)


UID = "6e086d2e-74c1-4def-bf1d-2c9eb40e1568"


def recorded_rc1() -> dict[str, Any]:
    return {**recorded.RC1, "metadata": {**recorded.RC1["metadata"], "uid": UID}}


def recorded_statefulset() -> dict[str, Any]:
    return next(c for c in recorded.upstream_children(UID) if c["kind"] == "StatefulSet")


def with_apiserver_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver fills into the pod template we send, and nothing else (rc1's fields only)."""
    filled = copy.deepcopy(template)
    pod = filled["spec"]
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("schedulerName", "default-scheduler")
    pod.setdefault("serviceAccount", pod["serviceAccountName"])  # the deprecated alias, copied
    for container in pod["containers"]:
        container.setdefault("imagePullPolicy", "IfNotPresent")  # a tag other than :latest
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for env in container["env"]:
            if field_ref := (env.get("valueFrom") or {}).get("fieldRef"):
                field_ref.setdefault("apiVersion", "v1")
        for port in container["ports"]:
            port.setdefault("protocol", "TCP")
        probe = container["readinessProbe"]
        probe["httpGet"].setdefault("scheme", "HTTP")
        for key, default in {
            "failureThreshold": 3,
            "periodSeconds": 10,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        }.items():
            probe.setdefault(key, default)
    for volume in pod["volumes"]:
        if "configMap" in volume:
            volume["configMap"].setdefault("defaultMode", 0o644)
    return filled


def test_pod_template_is_upstreams_for_the_recorded_cluster() -> None:
    """A different template would roll every Restate node when we take an upstream cluster over."""
    upstream = recorded_statefulset()
    legacy = upstream["spec"]["template"]["metadata"]["annotations"]
    ours = compute.statefulset(recorded_rc1(), SETTINGS, replicas=1, legacy_annotations=legacy)
    assert with_apiserver_defaults(ours["spec"]["template"]) == upstream["spec"]["template"]
    for field in ("replicas", "selector", "serviceName", "podManagementPolicy"):
        assert ours["spec"][field] == upstream["spec"][field], field
    (claim,) = ours["spec"]["volumeClaimTemplates"]
    (upstream_claim,) = upstream["spec"]["volumeClaimTemplates"]
    assert claim["metadata"] == upstream_claim["metadata"]
    assert quantity.same(claim["spec"]["resources"]["requests"]["storage"], "2147483648")


def test_kubectls_bookkeeping_reaches_a_pod_template_only_when_upstream_put_it_there() -> None:
    """Upstream copies last-applied-configuration onto the pod template: every `kubectl apply` rolls the nodes."""
    template = compute.statefulset(recorded_rc1(), SETTINGS, replicas=1)["spec"]["template"]
    assert recorded.LAST_APPLIED not in template["metadata"]["annotations"]
    kept = compute.statefulset(
        recorded_rc1(), SETTINGS, replicas=1, legacy_annotations={recorded.LAST_APPLIED: "old", "other": "x"}
    )
    assert kept["spec"]["template"]["metadata"]["annotations"] == {recorded.LAST_APPLIED: "old"}


def test_scale_down_approval_reaches_no_child() -> None:
    """Approving a scale-down must not roll the nodes it keeps."""
    obj = rsc()
    obj["metadata"]["annotations"] = {ALLOW_SCALE_DOWN: "true", "team": "a"}
    sts = compute.statefulset(obj, SETTINGS, replicas=1)
    assert sts["spec"]["template"]["metadata"]["annotations"] == {"team": "a"}
    for child in (sts, compute.service(obj), compute.config_map(obj), compute.namespace(obj)):
        assert child["metadata"]["annotations"] == {"team": "a"}, child["kind"]


def test_signing_key_from_a_provider_whose_crd_is_not_served_is_left_out() -> None:
    """As upstream: the pods run without it rather than never start (no CSI driver to mount it)."""
    obj = rsc()
    obj["spec"]["security"] = {
        "requestSigningPrivateKey": {"version": "v1", "secretProvider": {"provider": "aws", "path": "key.pem"}}
    }
    served = compute.statefulset(obj, SETTINGS, replicas=1)["spec"]["template"]["spec"]
    assert served["volumes"][-1]["csi"]["volumeAttributes"] == {"secretProviderClass": "request-signing-key-v1"}
    env = {e["name"]: e.get("value") for e in served["containers"][0]["env"]}
    assert env["RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"] == "/signing-key/key.pem"

    missing = frozenset({"SecretProviderClass"})
    pod = compute.statefulset(obj, SETTINGS, replicas=1, missing_crds=missing)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "config"]
    assert "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE" not in {e["name"] for e in pod["containers"][0]["env"]}
