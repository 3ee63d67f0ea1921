"""Pure RestateCluster builders: hashes, peers, collisions, env order."""

from __future__ import annotations

from typing import Any

import pytest

from services.builders.cluster import compute, network_policies
from services.builders.cluster.common import config_hash
from services.settings import Settings

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
    with pytest.raises(compute.InvalidCluster, match="volume name"):
        compute.statefulset(rsc(extraVolumes=[{"name": "tmp", "emptyDir": {}}]), SETTINGS, replicas=1)
    with pytest.raises(compute.InvalidCluster, match="/config"):
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
