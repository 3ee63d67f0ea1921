"""RestateCluster on the real apiserver: every child object checked against the spec, field by field.

kwok runs the pods; static PersistentVolumes (one storage class per test) let the claims bind.
NetworkPolicies are checked as objects only (nothing enforces them here).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from services.builders.cluster.common import config_hash
from tests.helpers import apply, condition, get, warning_events

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
GiB = 1024**3
CONFIG = "auto-provision = false\ndefault-num-partitions = 2\n"


def create_storage_class(stack: Stack, name: str) -> list[str]:
    """A StorageClass that allows expansion, with three static 8 GiB volumes; returns the volumes' names."""
    apply(
        stack,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "kubernetes.io/no-provisioner",
            "allowVolumeExpansion": True,
            "volumeBindingMode": "Immediate",
        },
    )
    pvs = [f"{name}-{i}" for i in range(3)]
    for pv in pvs:
        apply(
            stack,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "8Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": name,
                    "hostPath": {"path": f"/tmp/{pv}"},
                },
            },
        )
    return pvs


@pytest.fixture
def storage_class(operator: Operator) -> Iterator[str]:
    """A StorageClass with static volumes (create_storage_class); deleted afterwards."""
    stack, name = operator.stack, f"sc-{uuid.uuid4().hex[:6]}"
    pvs = create_storage_class(stack, name)
    yield name
    stack.control_plane.kubectl("delete", "pv", *pvs, "--wait=false")
    stack.control_plane.kubectl("delete", "storageclass", name, "--wait=false")


def cluster(name: str, storage_class: str, **spec: Any) -> Obj:
    base: Obj = {
        "config": CONFIG,
        "compute": {"image": "docker.io/restatedev/restate:1.7.12"},
        "storage": {"storageRequestBytes": 2 * GiB, "storageClassName": storage_class},
    }
    for key, value in spec.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return {"apiVersion": "restate.dev/v1", "kind": "RestateCluster", "metadata": {"name": name}, "spec": base}


@pytest.fixture
def cluster_name(operator: Operator) -> Iterator[str]:
    name = f"rsc-{uuid.uuid4().hex[:6]}"
    yield name
    operator.stack.control_plane.kubectl("delete", "rsc", name, "--ignore-not-found", "--wait=false")


def wait_for(stack: Stack, name: str, type_: str, status: str, timeout: float = 60) -> Obj:
    found: dict[str, Obj] = {}

    def check() -> bool:
        obj = get(stack, "rsc", name)
        cond = condition(obj, type_)
        if obj and cond.get("status") == status and cond.get("observedGeneration") == obj["metadata"]["generation"]:
            found["obj"] = obj
            return True
        return False

    procs.wait_until(f"{name} {type_}={status}", check, timeout=timeout)
    return found["obj"]


def child(stack: Stack, kind: str, name: str, namespace: str) -> Obj:
    obj = get(stack, kind, name, namespace)
    assert obj is not None, f"{kind} {namespace}/{name} missing"
    return obj


def test_every_child_matches_the_spec(operator: Operator, cluster_name: str, storage_class: str) -> None:
    stack, ns = operator.stack, cluster_name
    spec = cluster(
        ns,
        storage_class,
        compute={
            "replicas": 2,
            "env": [{"name": "RESTATE_LOG_FORMAT", "value": "pretty"}, {"name": "EXTRA", "value": "1"}],
            "labels": {"team": "payments", "app.kubernetes.io/name": "ignored"},
            "annotations": {"scrape": "yes"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "restate", "effect": "NoSchedule"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "sidecars": [{"name": "proxy", "image": "proxy:1"}],
            "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
        security={
            "serviceAnnotations": {"svc": "a"},
            "serviceAccountAnnotations": {"sa": "b"},
            "networkPeers": {"ingress": [], "admin": [{"podSelector": {"matchLabels": {"role": "deployer"}}}]},
            "networkEgressRules": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 443}]}],
        },
    )
    apply(stack, spec)
    obj = wait_for(stack, ns, "Ready", "True")
    uid = obj["metadata"]["uid"]
    mandatory = {"app.kubernetes.io/name": "restate", "app.kubernetes.io/instance": ns}

    namespace = child(stack, "namespace", ns, "")
    assert namespace["metadata"]["ownerReferences"][0]["uid"] == uid
    assert child(stack, "serviceaccount", "restate", ns)["metadata"]["annotations"]["sa"] == "b"
    cm = child(stack, "configmap", f"restate-config-{config_hash(CONFIG)}", ns)
    assert cm["data"] == {"config.toml": CONFIG}

    svc = child(stack, "service", "restate", ns)
    assert svc["metadata"]["annotations"]["svc"] == "a"
    assert svc["spec"]["selector"] == mandatory
    assert [(p["name"], p["port"], p["appProtocol"]) for p in svc["spec"]["ports"]] == [
        ("ingress", 8080, "kubernetes.io/h2c"),
        ("admin", 9070, "kubernetes.io/h2c"),
        ("metrics", 5122, "kubernetes.io/h2c"),
    ]
    headless = child(stack, "service", "restate-cluster", ns)
    assert (headless["spec"]["clusterIP"], headless["spec"]["publishNotReadyAddresses"]) == ("None", True)
    assert child(stack, "pdb", "restate", ns)["spec"]["maxUnavailable"] == 1

    sts = child(stack, "statefulset", "restate", ns)
    assert sts["metadata"]["ownerReferences"][0]["uid"] == uid
    assert (sts["spec"]["replicas"], sts["spec"]["serviceName"], sts["spec"]["podManagementPolicy"]) == (
        2,
        "restate-cluster",
        "Parallel",
    )
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "storage"
    assert claim["spec"]["storageClassName"] == storage_class
    assert claim["spec"]["resources"]["requests"]["storage"] == str(2 * GiB)
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "payments"
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "restate", "operator labels win"
    assert template["metadata"]["annotations"]["scrape"] == "yes"
    pod = template["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"], pod["terminationGracePeriodSeconds"]) == (
        "restate",
        False,
        60,
    )
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["tolerations"] == spec["spec"]["compute"]["tolerations"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["initContainers"][0]["name"] == "proxy"
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    (container,) = pod["containers"]
    assert container["image"] == "docker.io/restatedev/restate:1.7.12"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9070, "scheme": "HTTP"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RESTATE_LOG_FORMAT"] == "pretty", "a user entry replaces the default"
    assert [e["name"] for e in container["env"]].count("RESTATE_LOG_FORMAT") == 1
    assert env["EXTRA"] == "1"
    assert env["RESTATE_CLUSTER_NAME"] == ns
    assert env["RESTATE_ADVERTISED_ADDRESS"] == "http://$(POD_NAME).restate-cluster:5122"
    assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/restate-data": "storage", "/tmp": "tmp", "/config": "config", "/scratch": "scratch"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == cm["metadata"]["name"]

    policies = {
        p["metadata"]["name"]: p["spec"]
        for p in json.loads(stack.control_plane.kubectl("get", "networkpolicy", "-n", ns, "-o", "json"))["items"]
    }
    assert set(policies) == {
        "deny-all",
        "allow-egress-to-dns",
        "allow-restate-egress-to-public-internet",
        "allow-restate-egress",
        "allow-ingress-access",
        "allow-admin-access",
        "allow-metrics-access",
    }
    for policy in policies.values():
        assert policy["podSelector"] == {"matchLabels": mandatory}
    assert policies["deny-all"]["policyTypes"] == ["Egress", "Ingress"]
    assert "ingress" not in policies["deny-all"]
    assert "egress" not in policies["deny-all"]
    assert policies["allow-ingress-access"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}], "[] = all"
    assert policies["allow-admin-access"]["ingress"] == [
        {"ports": [{"port": 9070, "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": {"role": "deployer"}}}]}
    ]
    node_from = policies["allow-metrics-access"]["ingress"][0]["from"]
    assert node_from == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "podSelector": {"matchLabels": mandatory},
        }
    ], "unset node peers: only the cluster itself"
    egress = policies["allow-restate-egress"]["egress"]
    assert egress[0]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "user rules come first"
    assert egress[2]["to"][0]["podSelector"] == {"matchLabels": {f"allow.restate.dev/{ns}": "true"}}
    dns = policies["allow-egress-to-dns"]["egress"][0]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"]
    public = policies["allow-restate-egress-to-public-internet"]["egress"][0]["to"]
    assert public[0]["ipBlock"] == {"cidr": "0.0.0.0/1", "except": ["10.0.0.0/8"]}

    status = obj["status"]
    assert (status["replicas"], status["readyReplicas"], status["configHash"]) == (2, 2, config_hash(CONFIG))
    assert condition(obj, "Degraded")["status"] == "False"


def test_pre_existing_namespace_is_used_but_never_changed_or_deleted(
    operator: Operator, cluster_name: str, storage_class: str
) -> None:
    stack, ns = operator.stack, cluster_name
    stack.control_plane.kubectl("create", "namespace", ns)
    stack.control_plane.kubectl("label", "namespace", ns, "owner=platform-team")
    apply(stack, cluster(ns, storage_class))
    wait_for(stack, ns, "Ready", "True")
    namespace = child(stack, "namespace", ns, "")
    assert "ownerReferences" not in namespace["metadata"]
    assert namespace["metadata"]["labels"]["owner"] == "platform-team"
    assert "app.kubernetes.io/instance" not in namespace["metadata"]["labels"]
    stack.control_plane.kubectl("delete", "rsc", ns)
    procs.wait_until("cluster deleted", lambda: get(stack, "rsc", ns) is None, timeout=60)
    assert get(stack, "namespace", ns) is not None
    stack.control_plane.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"compute": {"extraVolumes": [{"name": "config", "emptyDir": {}}]}},
            "volume name(s) config used more than once",
            id="volume-name-collision",
        ),
        pytest.param(
            {
                "compute": {
                    "extraVolumes": [{"name": "x", "emptyDir": {}}],
                    "extraVolumeMounts": [{"name": "x", "mountPath": "/tmp"}],
                }
            },
            "mount path(s) /tmp used more than once",
            id="mount-path-collision",
        ),
        pytest.param(
            {"config": "auto-provision = = false"}, "the Restate config is not valid TOML", id="unparsable-config"
        ),
    ],
)
def test_bad_spec_is_degraded_with_an_event_and_the_operator_stays_healthy(
    operator: Operator, cluster_name: str, storage_class: str, spec: Obj, message: str
) -> None:
    stack, ns = operator.stack, cluster_name
    apply(stack, cluster(ns, storage_class, **spec))
    obj = wait_for(stack, ns, "Degraded", "True")
    assert message.format(ns=ns) in condition(obj, "Degraded")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert get(stack, "statefulset", "restate", ns) is None, "nothing half-applied"
    events = warning_events(stack, ns)
    assert len(events) == 1
    assert httpx.get(f"http://127.0.0.1:{operator.services_probes_port}/readyz", timeout=5).status_code == 200


def test_signing_secret_is_mounted_without_being_read(
    operator: Operator, cluster_name: str, storage_class: str
) -> None:
    """Secrets outside the operator namespace are never read (least privilege): a missing one is left to the pods."""
    stack, ns = operator.stack, cluster_name
    signing = {"version": "v1", "secret": {"secretName": "nope", "key": "private.pem"}}
    apply(stack, cluster(ns, storage_class, security={"requestSigningPrivateKey": signing}))
    wait_for(stack, ns, "Ready", "True")  # kwok starts pods without mounting volumes
    volumes = child(stack, "statefulset", "restate", ns)["spec"]["template"]["spec"]["volumes"]
    secrets = [v["secret"] for v in volumes if v.get("secret")]
    assert [(s["secretName"], s["items"][0]["key"]) for s in secrets] == [("nope", "private.pem")]


def test_volume_expansion_grows_claims_and_recreates_the_statefulset(
    operator: Operator, cluster_name: str, storage_class: str
) -> None:
    stack, ns = operator.stack, cluster_name
    apply(stack, cluster(ns, storage_class))
    wait_for(stack, ns, "Ready", "True")
    before = child(stack, "statefulset", "restate", ns)["metadata"]["uid"]
    apply(stack, cluster(ns, storage_class, storage={"storageRequestBytes": 4 * GiB}))

    def expanded() -> bool:
        pvc = get(stack, "pvc", "storage-restate-0", ns)
        sts = get(stack, "statefulset", "restate", ns)
        return bool(
            pvc
            and sts
            and pvc["spec"]["resources"]["requests"]["storage"] in ("4Gi", str(4 * GiB))
            and sts["metadata"]["uid"] != before
            and sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == str(4 * GiB)
        )

    procs.wait_until("claims expanded and StatefulSet re-created", expanded, timeout=60)
    wait_for(stack, ns, "Ready", "True")


def test_scale_down_waits_for_an_explicit_go_ahead_which_rolls_no_node(
    operator: Operator, cluster_name: str, storage_class: str
) -> None:
    stack, ns = operator.stack, cluster_name
    apply(stack, cluster(ns, storage_class, compute={"replicas": 2}))
    wait_for(stack, ns, "Ready", "True")
    apply(stack, cluster(ns, storage_class, compute={"replicas": 1}))

    def blocked() -> bool:
        return condition(get(stack, "rsc", ns), "Ready").get("reason") == "ScaleDownBlocked"

    procs.wait_until("ScaleDownBlocked", blocked, timeout=30)
    assert "restate.dev/allow-scale-down=true" in condition(get(stack, "rsc", ns), "Ready")["message"]
    before = child(stack, "statefulset", "restate", ns)
    assert before["spec"]["replicas"] == 2
    stack.control_plane.kubectl("annotate", "rsc", ns, "restate.dev/allow-scale-down=true")
    procs.wait_until(
        "scaled to 1", lambda: child(stack, "statefulset", "restate", ns)["spec"]["replicas"] == 1, timeout=30
    )
    after = child(stack, "statefulset", "restate", ns)
    assert after["spec"]["template"] == before["spec"]["template"], "the node that stays is not rolled"
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1, "one change: replicas"
    assert after["status"]["updateRevision"] == before["status"]["updateRevision"]
    assert "restate.dev/allow-scale-down" not in (after["metadata"].get("annotations") or {})


def test_storage_size_rewritten_by_the_apiserver_keeps_the_statefulset(
    operator: Operator, cluster_name: str, storage_class: str
) -> None:
    """3000000000 is stored as 3G: compared as strings, every pass orphaned and re-created the StatefulSet."""
    stack, ns = operator.stack, cluster_name
    apply(stack, cluster(ns, storage_class, storage={"storageRequestBytes": 3 * 10**9}))
    wait_for(stack, ns, "Ready", "True")
    sts = child(stack, "statefulset", "restate", ns)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "3G"
    for _ in range(3):
        result = httpx.post(f"{stack.restate.ingress_url}/ClusterReconciler/{ns}/reconcile", json={}, timeout=60)
        assert result.json()["reason"] == "Reconciled"
    assert child(stack, "statefulset", "restate", ns)["metadata"]["uid"] == sts["metadata"]["uid"]


def test_disabling_network_policies_deletes_them(operator: Operator, cluster_name: str, storage_class: str) -> None:
    stack, ns = operator.stack, cluster_name
    apply(stack, cluster(ns, storage_class))
    wait_for(stack, ns, "Ready", "True")
    apply(stack, cluster(ns, storage_class, security={"disableNetworkPolicies": True}))
    procs.wait_until(
        "policies deleted",
        lambda: json.loads(stack.control_plane.kubectl("get", "networkpolicy", "-n", ns, "-o", "json"))["items"] == [],
        timeout=30,
    )
