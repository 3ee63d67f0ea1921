"""The Helm chart charts/restate-operator: lint, what it renders for default and non-default values,
the values schema rejecting mistakes, and (with the real apiserver) every rendered object accepted by a
server-side dry run and the size of the Helm release Secret of a real install.

The rendering tests need only the helm binary of the control-plane build (`make tools`); the tests
marked `integration` start the stack.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from devstack import tools
from devstack.stack import Stack
from tests.chart.helm import CHART, NS, PROMETHEUSRULE_CRD, RELEASE, Helm, Obj, as_list, find, kinds_and_names

IDENTITY_KEYS = ["publickeyv1_5Fx2JkSu1Lw3LYvUh8pT7uV8", "publickeyv1_9aBcDeFgHiJkLmNoPqRsTuVw"]
SERVICES_ENV = {
    "SERVICES_BIND",
    "PROBES_BIND",
    "OPERATOR_NAMESPACE",
    "POD_NAME",
    "OPERATOR_LABEL_NAME",
    "OPERATOR_LABEL_VALUE",
    "LOG_LEVEL",
    "SHUTDOWN_GRACE_SECONDS",
    "RECONCILE_RETENTION_SECONDS",
    "RESTATE_ADMIN_URL",
    "SERVICES_ADVERTISED_URL",
}

# Everything non-default at once: an external Restate, no CRDs, no policies, a ServiceMonitor, the
# dashboard and the alerts, cloud identities, two watchers, extra env and scheduling constraints.
CUSTOM: Obj = {
    "fullnameOverride": "rop",
    "image": {"repository": "registry.example.com/restate-operator", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "logLevel": "DEBUG",
    "clusterDns": "corp.internal",
    "canaryImage": "registry.example.com/alpine:3.22",
    "tunnelClientDefaultImage": "registry.example.com/tunnel-client:0.7.0",
    "awsPodIdentityAssociationCluster": "eks-prod",
    "gcpWorkloadIdentity": True,
    "installCrds": False,
    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp.internal:3128"}],
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]
            }
        }
    },
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "priorityClassName": "operators",
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/op"}},
    "services": {
        "replicaCount": 2,
        "shutdownGraceSeconds": 45,
        "reconcileRetentionSeconds": 600,
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "env": [{"name": "STEP_DELAY_SECONDS", "value": "0"}],
    },
    "watcher": {
        "replicaCount": 2,
        "resyncSeconds": 120,
        "resources": {"requests": {"cpu": "30m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}},
        "env": [{"name": "MAX_IN_FLIGHT", "value": "32"}],
    },
    "bootstrap": {"enabled": False},
    "restate": {
        "adminUrl": "https://restate.example.com:9070",
        "ingressUrl": "https://restate.example.com:8080",
        "identityKeys": IDENTITY_KEYS,
    },
    "networkPolicy": {"enabled": False},
    "serviceMonitor": {
        "enabled": True,
        "interval": "30s",
        "scrapeTimeout": "10s",
        "labels": {"release": "kube-prometheus"},
        "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
    },
    "monitoring": {
        "dashboards": {"enabled": True, "labels": {"team": "platform"}, "annotations": {"grafana_folder": "Restate"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus"},
            "alertLabels": {"team": "platform"},
            "drainStuck": {"for": "2h"},
        },
    },
    "podDisruptionBudget": {"maxUnavailable": "50%"},
}


def container(workload: Obj) -> Obj:
    containers: list[Obj] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: Obj) -> dict[str, Any]:
    """name -> value, or the valueFrom object for downward-API entries; a name may appear only once."""
    entries = container(workload)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in entries}


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Obj]:
    return helm.render()


@pytest.fixture(scope="module")
def custom(helm: Helm) -> list[Obj]:
    return helm.render(CUSTOM)


# --- lint ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize("values", [None, CUSTOM, {"bootstrap": {"replicas": 3}}], ids=["default", "custom", "ha"])
def test_chart_passes_helm_lint(helm: Helm, strict: bool, values: Obj | None) -> None:
    args = ["lint", str(CHART), "--namespace", NS, *(["--strict"] if strict else [])]
    if values is not None:
        args += ["--values", str(helm.values_file(values))]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_metadata_follows_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert (chart["name"], chart["version"], chart["appVersion"], chart["type"]) == (
        "restate-operator",
        "0.1.0",
        "0.1.0",
        "application",
    )
    assert chart["kubeVersion"] == ">=1.28.0-0"
    pyproject = tomllib.loads((tools.REPO / "pyproject.toml").read_text())
    assert chart["appVersion"] == pyproject["project"]["version"]


# --- default rendering -----------------------------------------------------------------------------


def test_default_install_renders_operator_bootstrap_restate_and_crds(default: list[Obj]) -> None:
    assert kinds_and_names(default) == {
        ("CustomResourceDefinition", "restateclusters.restate.dev"),
        ("CustomResourceDefinition", "restatedeployments.restate.dev"),
        ("CustomResourceDefinition", "restatecloudenvironments.restate.dev"),
        ("ServiceAccount", "restate-operator"),
        ("ServiceAccount", "restate-operator-watcher"),
        ("ClusterRole", "restate-operator"),
        ("ClusterRole", "restate-operator-watcher"),
        ("ClusterRoleBinding", "restate-operator"),
        ("ClusterRoleBinding", "restate-operator-watcher"),
        ("Role", "restate-operator"),
        ("RoleBinding", "restate-operator"),
        ("Role", "restate-operator-watcher"),  # token Secrets' metadata, for rotation
        ("RoleBinding", "restate-operator-watcher"),
        ("Deployment", "restate-operator"),
        ("Deployment", "restate-operator-watcher"),
        ("Service", "restate-operator"),
        ("Service", "restate-operator-metrics"),
        ("Service", "restate-operator-watcher-metrics"),
        ("PodDisruptionBudget", "restate-operator"),
        ("PodDisruptionBudget", "restate-operator-watcher"),
        ("NetworkPolicy", "restate-bootstrap"),
        ("NetworkPolicy", "restate-operator"),
        ("NetworkPolicy", "restate-operator-watcher"),
        ("Secret", "restate-operator-request-identity"),
        ("ConfigMap", "restate-bootstrap-config"),
        ("Service", "restate"),
        ("Service", "restate-cluster"),
        ("StatefulSet", "restate"),
    }
    namespaced = [
        o for o in default if o["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    ]
    assert {o["metadata"].get("namespace") for o in namespaced} == {NS}


def test_every_object_carries_the_standard_labels(default: list[Obj], custom: list[Obj]) -> None:
    for obj in [*default, *custom]:
        labels = obj["metadata"]["labels"]
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels["helm.sh/chart"] == "restate-operator-0.1.0", where
        assert labels["app.kubernetes.io/name"] == "restate-operator", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["app.kubernetes.io/version"] in {"0.1.0", "1.2.3"}, where
        components = (
            {"crd"}
            if obj["kind"] == "CustomResourceDefinition"
            else {"services", "watcher", "bootstrap-restate", "monitoring"}
        )
        assert labels["app.kubernetes.io/component"] in components, where


def test_services_deployment_runs_the_reconcilers_against_the_bootstrap_restate(default: list[Obj]) -> None:
    deployment = find(default, "Deployment", "restate-operator")
    pod = deployment["spec"]["template"]
    c = container(deployment)
    assert c["image"] == "restate-operator.local/restate-operator:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["python", "-m", "services"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"restate": 9080, "probes": 8081}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert deployment["spec"]["replicas"] == 1

    env = env_of(deployment)
    assert env["SERVICES_BIND"] == "0.0.0.0:9080"
    assert env["PROBES_BIND"] == "0.0.0.0:8081"
    assert env["OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OPERATOR_LABEL_NAME"] == "app"
    assert env["OPERATOR_LABEL_VALUE"] == {"fieldRef": {"fieldPath": "metadata.labels['app']"}}
    assert pod["metadata"]["labels"]["app"] == "restate-operator"
    assert env["LOG_LEVEL"] == "INFO"
    assert env["SHUTDOWN_GRACE_SECONDS"] == "20"
    assert env["RECONCILE_RETENTION_SECONDS"] == "3600"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    assert env["RESTATE_ADMIN_URL"] == f"http://restate.{NS}.svc.cluster.local:9070"
    assert env["SERVICES_ADVERTISED_URL"] == f"http://restate-operator.{NS}.svc.cluster.local:9080"
    assert env["REQUEST_IDENTITY_PRIVATE_KEY_FILE"] == "/etc/restate-operator/identity/private.pem"
    # optional settings stay unset, so the operator's own defaults apply
    assert set(env) == SERVICES_ENV | {"REQUEST_IDENTITY_PRIVATE_KEY_FILE"}

    assert pod["spec"]["serviceAccountName"] == "restate-operator"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "services"
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def test_operator_pods_run_non_root_on_a_read_only_root_filesystem(default: list[Obj]) -> None:
    for name in ("restate-operator", "restate-operator-watcher"):
        spec = find(default, "Deployment", name)["spec"]["template"]["spec"]
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        security = spec["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        # a writable /tmp, since the root filesystem is not
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["tmp"] == "/tmp"
        assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]


def test_watcher_deployment_forwards_to_the_bootstrap_ingress(default: list[Obj]) -> None:
    deployment = find(default, "Deployment", "restate-operator-watcher")
    pod = deployment["spec"]["template"]
    c = container(deployment)
    assert c["command"] == ["python", "-m", "watcher"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"probes": 8082}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert env_of(deployment) == {
        "PROBES_BIND": "0.0.0.0:8082",
        "RESTATE_INGRESS_URL": f"http://restate.{NS}.svc.cluster.local:8080",
        "RESYNC_SECONDS": "300",
        "OPERATOR_NAMESPACE": NS,  # token Secrets are watched there
        "LOG_LEVEL": "INFO",
    }
    assert pod["metadata"]["labels"]["app"] == "restate-operator-watcher"
    assert pod["spec"]["serviceAccountName"] == "restate-operator-watcher"
    assert deployment["spec"]["replicas"] == 1
    assert c["resources"] == {"requests": {"cpu": "20m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}


def test_selectors_pick_exactly_one_component(default: list[Obj]) -> None:
    """Every selector names name + instance + component, and matches its own pods only."""
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in default
        if o["kind"] in {"Deployment", "StatefulSet"}
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if all(labels.get(k) == v for k, v in selector.items())}

    for obj in default:
        if obj["kind"] in {"Deployment", "StatefulSet", "PodDisruptionBudget"}:
            selector = obj["spec"]["selector"]["matchLabels"]
        elif obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        else:
            continue
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
        owner = {"services": "restate-operator", "watcher": "restate-operator-watcher", "bootstrap-restate": "restate"}
        assert selected(selector) == {owner[selector["app.kubernetes.io/component"]]}, obj["metadata"]["name"]


def test_services_expose_their_target_ports_unchanged(default: list[Obj]) -> None:
    ports = {
        o["metadata"]["name"]: {(p["name"], p["port"], p["targetPort"]) for p in o["spec"]["ports"]}
        for o in default
        if o["kind"] == "Service"
    }
    assert ports == {
        "restate-operator": {("restate", 9080, 9080)},
        "restate-operator-metrics": {("metrics", 8081, 8081)},
        "restate-operator-watcher-metrics": {("metrics", 8082, 8082)},
        "restate": {("ingress", 8080, 8080), ("admin", 9070, 9070)},
        "restate-cluster": {("node", 5122, 5122)},
    }
    assert find(default, "Service", "restate-operator")["spec"]["ports"][0]["appProtocol"] == "kubernetes.io/h2c"
    for name in ("restate-operator-metrics", "restate-operator-watcher-metrics"):
        service = find(default, "Service", name)
        assert service["metadata"]["labels"]["restate.dev/metrics"] == "true"
        assert service["spec"]["publishNotReadyAddresses"] is True
    assert find(default, "Service", "restate-cluster")["spec"]["clusterIP"] == "None"


def test_disruption_budgets_never_block_a_drain(default: list[Obj]) -> None:
    for name in ("restate-operator", "restate-operator-watcher"):
        spec = find(default, "PodDisruptionBudget", name)["spec"]
        assert spec["maxUnavailable"] == 1
        assert "minAvailable" not in spec


def test_rbac_binds_each_process_to_its_own_roles(default: list[Obj]) -> None:
    for kind, name, role_kind, account in (
        ("ClusterRoleBinding", "restate-operator", "ClusterRole", "restate-operator"),
        ("ClusterRoleBinding", "restate-operator-watcher", "ClusterRole", "restate-operator-watcher"),
        ("RoleBinding", "restate-operator", "Role", "restate-operator"),
    ):
        binding = find(default, kind, name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NS}]
        assert find(default, role_kind, name)["rules"], f"{role_kind}/{name} has no rules"


def test_crds_are_the_generated_ones_kept_on_uninstall(default: list[Obj]) -> None:
    rendered = {o["metadata"]["name"]: o for o in default if o["kind"] == "CustomResourceDefinition"}
    generated = {}
    for path in sorted((tools.REPO / "crd").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        generated[crd["metadata"]["name"]] = crd
    assert set(rendered) == set(generated)
    for name, crd in rendered.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/name"] == "restate-operator"
        # apart from the annotation and Helm's labels, exactly the generated CRD (the fromYaml/toYaml
        # round trip changes no number, string or structure)
        source = generated[name]
        assert {k: v for k, v in crd.items() if k != "metadata"} == {k: v for k, v in source.items() if k != "metadata"}
        assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()


def test_chart_carries_the_crds_of_crd_dir() -> None:
    """crds-files/ holds links to crd/ (helm follows them), so the chart cannot drift from the generated CRDs."""
    carried = sorted(p.name for p in (CHART / "crds-files").iterdir())
    assert carried == sorted(p.name for p in (tools.REPO / "crd").glob("*.yaml"))
    for name in carried:
        link = CHART / "crds-files" / name
        assert link.is_symlink(), f"{link} should be a symlink to crd/{name}"
        assert link.resolve() == (tools.REPO / "crd" / name).resolve()


def test_request_identity_secret_holds_an_ed25519_key_mounted_by_restate_and_services(default: list[Obj]) -> None:
    secret = find(default, "Secret", "restate-operator-request-identity")
    pem = base64.b64decode(secret["data"]["private.pem"])
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(load_pem_private_key(pem, password=None), Ed25519PrivateKey)
    assert "helm.sh/resource-policy" not in (secret["metadata"].get("annotations") or {})

    restate = find(default, "StatefulSet", "restate")
    services = find(default, "Deployment", "restate-operator")
    for workload, path in ((restate, "/etc/restate-identity"), (services, "/etc/restate-operator/identity")):
        spec = workload["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if v["name"] == "request-identity")
        assert volume["secret"]["secretName"] == "restate-operator-request-identity"
        assert volume["secret"]["defaultMode"] == 0o440
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "request-identity")
        assert (mount["mountPath"], mount["readOnly"]) == (path, True)
    signing = env_of(restate)["RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"]
    assert signing == "/etc/restate-identity/private.pem"


def test_request_identity_can_be_turned_off(helm: Helm) -> None:
    objects = helm.render({"requestIdentity": {"enabled": False}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "REQUEST_IDENTITY_PRIVATE_KEY_FILE" not in env_of(find(objects, "Deployment", "restate-operator"))
    restate = find(objects, "StatefulSet", "restate")
    assert not [name for name in env_of(restate) if "IDENTITY" in name]
    assert [v["name"] for v in restate["spec"]["template"]["spec"]["volumes"]] == ["config"]


def test_bootstrap_restate_is_a_one_node_restate_1_7_12(default: list[Obj]) -> None:
    sts = find(default, "StatefulSet", "restate")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = container(sts)
    assert c["image"] == "docker.io/restatedev/restate:1.7.12"
    assert (spec["replicas"], spec["serviceName"]) == (1, "restate-cluster")
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"ingress": 8080, "admin": 9070, "node": 5122}
    assert c["readinessProbe"]["httpGet"] == {"path": "/restate/health", "port": "ingress"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "admin"}
    env = env_of(sts)
    assert env["RESTATE_CONFIG"] == "/etc/restate/config.toml"
    assert env["RESTATE_NODE_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["RESTATE_BASE_DIR"] == "/restate-data"
    assert env["RESTATE_ADVERTISED_ADDRESS"] == "http://$(RESTATE_NODE_NAME).restate-cluster:5122"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert (mounts["storage"], mounts["config"]) == ("/restate-data", "/etc/restate")
    assert pod["securityContext"] == {"fsGroup": 2000}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert pod["automountServiceAccountToken"] is False
    # the pod runner of the test stack reads the first ConfigMap volume as the config
    assert next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["name"] == "restate-bootstrap-config"

    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "storage"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "storageClassName" not in claim["spec"]
    # claim templates are immutable: only labels that never change between chart versions
    assert "helm.sh/chart" not in claim["metadata"]["labels"]
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"]

    config = tomllib.loads(find(default, "ConfigMap", "restate-bootstrap-config")["data"]["config.toml"])
    assert config == {
        "cluster-name": "restate-operator",
        "auto-provision": True,
        "default-num-partitions": 4,
        "rocksdb-total-memory-size": "256 MB",
    }


def test_bootstrap_settings_reach_config_and_pod(helm: Helm) -> None:
    extra = '[worker.invoker]\ninactivity-timeout = "2m"\n'
    objects = helm.render(
        {
            "bootstrap": {
                "partitions": 8,
                "extraConfig": extra,
                "storage": {"size": "10Gi", "storageClassName": "fast"},
                "image": {"tag": "1.7.13"},
            }
        }
    )
    config = tomllib.loads(find(objects, "ConfigMap", "restate-bootstrap-config")["data"]["config.toml"])
    assert config["default-num-partitions"] == 8
    assert config["worker"] == {"invoker": {"inactivity-timeout": "2m"}}
    sts = find(objects, "StatefulSet", "restate")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == ("fast", "10Gi")
    assert container(sts)["image"] == "docker.io/restatedev/restate:1.7.13"
    # a config change rolls the pod
    default = find(helm.render(), "StatefulSet", "restate")["spec"]["template"]["metadata"]["annotations"]
    changed = sts["spec"]["template"]["metadata"]["annotations"]
    assert default["checksum/config"] != changed["checksum/config"]


def dump_config(rendered: list[Obj], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Obj, str]:
    """The rendered bootstrap config as restate-server 1.7.12 itself loads it (`--dump-config`),
    and everything it printed (for warnings)."""
    tools.require_restate()
    path = tmp_path / "config.toml"
    path.write_text(find(rendered, "ConfigMap", "restate-bootstrap-config")["data"]["config.toml"])
    result = subprocess.run(
        [str(tools.restate_server_bin()), "--config-file", str(path), "--dump-config"],
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout[result.stdout.index("roles") :]), result.stdout + result.stderr


def test_bootstrap_config_is_accepted_by_restate_server(default: list[Obj], tmp_path: Path) -> None:
    """restate-server 1.7.12 itself loads the rendered config (and the signing-key setting) without complaint."""
    sts = find(default, "StatefulSet", "restate")
    env = {k: v for k, v in env_of(sts).items() if isinstance(v, str) and k.startswith("RESTATE_WORKER")}
    dumped, output = dump_config(default, tmp_path, env)
    assert dumped["cluster-name"] == "restate-operator"
    assert dumped["default-num-partitions"] == 4
    assert dumped["worker"]["invoker"]["request-identity-private-key-pem-file"] == "/etc/restate-identity/private.pem"
    assert dumped["worker"]["cleanup-interval"] == "10m", "finished passes purged within 10 minutes of expiring"
    assert "deprecated" not in output


HA_VALUES = tools.REPO / "examples" / "values-ha.yaml"
NODES = [f"http://restate-{n}.restate-cluster:5122" for n in range(3)]


@pytest.fixture(scope="module")
def ha(helm: Helm) -> list[Obj]:
    return helm.render(yaml.safe_load(HA_VALUES.read_text()))


def test_ha_example_runs_three_restate_nodes_two_services_two_watchers(ha: list[Obj]) -> None:
    sts = find(ha, "StatefulSet", "restate")["spec"]
    assert sts["replicas"] == 3
    assert sts["podManagementPolicy"] == "Parallel", "OrderedReady would wait for a node that waits for a quorum"
    (spread,) = sts["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == selector_of("bootstrap-restate")["podSelector"]
    assert find(ha, "Deployment", "restate-operator")["spec"]["replicas"] == 2
    assert find(ha, "Deployment", "restate-operator-watcher")["spec"]["replicas"] == 2
    # the pods still reach Restate through the one Service, whichever nodes are up
    assert env_of(find(ha, "Deployment", "restate-operator"))["RESTATE_ADMIN_URL"] == (
        f"http://restate.{NS}.svc.cluster.local:9070"
    )


def test_ha_bootstrap_is_replicated_and_never_provisions_itself(ha: list[Obj]) -> None:
    config = tomllib.loads(find(ha, "ConfigMap", "restate-bootstrap-config")["data"]["config.toml"])
    assert config == {
        "cluster-name": "restate-operator",
        "auto-provision": False,
        "default-num-partitions": 4,
        "rocksdb-total-memory-size": "256 MB",
        "default-replication": 2,
        "metadata-client": {"addresses": NODES},
    }
    # every node advertises the name the others know it by
    sts = find(ha, "StatefulSet", "restate")
    assert env_of(sts)["RESTATE_ADVERTISED_ADDRESS"] == "http://$(RESTATE_NODE_NAME).restate-cluster:5122"
    assert "roles" not in config, "all roles on every node, the metadata server included"


def test_ha_cluster_is_provisioned_once_by_a_post_install_job(ha: list[Obj], default: list[Obj]) -> None:
    job = find(ha, "Job", "restate-provision")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install", "never again on upgrade"
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "docker.io/restatedev/restate:1.7.12"
    shell, flag, script, address = c["command"]
    assert (shell, flag, address) == ("sh", "-c", NODES[0])
    assert 'restatectl provision --address "$0" --yes' in script
    assert "while true" in script, "restatectl exits 0 even when restate-0 did not answer: the loop decides"
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] > 0, "retries bounded"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "bootstrap-provision"
    assert not [o for o in default if o["kind"] == "Job"], "one node provisions itself"
    # the Job reaches restate-0's node port through the policy, and is no backend of the Service
    node_port = peers_of(find(ha, "NetworkPolicy", "restate-bootstrap"))[5122]
    assert node_port == [selector_of("bootstrap-restate"), selector_of("bootstrap-provision")]
    assert peers_of(find(default, "NetworkPolicy", "restate-bootstrap"))[5122] == [selector_of("bootstrap-restate")]
    selector = find(ha, "Service", "restate")["spec"]["selector"]
    assert selector["app.kubernetes.io/component"] == "bootstrap-restate"


def test_ha_disruption_budget_lets_one_restate_node_go_at_a_time(helm: Helm, default: list[Obj]) -> None:
    values = {**yaml.safe_load(HA_VALUES.read_text()), "podDisruptionBudget": {"maxUnavailable": "50%"}}
    spec = find(helm.render(values), "PodDisruptionBudget", "restate")["spec"]
    assert spec["maxUnavailable"] == 1, "a majority of the nodes must stay up, whatever the operator pods allow"
    assert spec["selector"]["matchLabels"] == selector_of("bootstrap-restate")["podSelector"]["matchLabels"]
    assert ("PodDisruptionBudget", "restate") not in kinds_and_names(default), "one node: nothing to keep up"


def test_ha_config_is_accepted_by_restate_server(ha: list[Obj], tmp_path: Path) -> None:
    dumped, output = dump_config(ha, tmp_path)
    assert dumped["auto-provision"] is False
    assert dumped["metadata-client"]["addresses"] == [f"{node}/" for node in NODES]
    assert "deprecated" not in output


def peers_of(policy: Obj) -> dict[int, list[Obj] | None]:
    """port -> allowed peers (None: any source) of an ingress-only policy."""
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules: dict[int, list[Obj] | None] = {}
    for rule in policy["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        rules[port["port"]] = rule.get("from")
    return rules


def selector_of(component: str) -> Obj:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "restate-operator",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": component,
            }
        }
    }


def test_network_policies_let_in_only_the_operator_and_labelled_pods(default: list[Obj]) -> None:
    labelled = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"restate.dev/operator-access": "true"}}}
    restate = find(default, "NetworkPolicy", "restate-bootstrap")
    assert restate["spec"]["podSelector"] == selector_of("bootstrap-restate")["podSelector"]
    assert peers_of(restate) == {
        8080: [selector_of("watcher"), labelled],
        9070: [selector_of("services"), labelled],
        5122: [selector_of("bootstrap-restate")],
    }
    services = find(default, "NetworkPolicy", "restate-operator")
    assert services["spec"]["podSelector"] == selector_of("services")["podSelector"]
    assert peers_of(services) == {9080: [selector_of("bootstrap-restate")], 8081: None}
    watcher = find(default, "NetworkPolicy", "restate-operator-watcher")
    assert peers_of(watcher) == {8082: None}
    for policy in (restate, services, watcher):
        assert "egress" not in policy["spec"]


def test_network_policies_with_an_external_restate(helm: Helm) -> None:
    """restatePeers admit the external Restate; metricsFrom null closes the metrics ports; [] peers add nothing."""
    external = {"ipBlock": {"cidr": "10.20.0.0/16"}}
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    base = {
        "bootstrap": {"enabled": False},
        "restate": {"adminUrl": "http://restate.restate.svc:9070", "ingressUrl": "http://restate.restate.svc:8080"},
    }
    objects = helm.render({**base, "networkPolicy": {"restatePeers": [external], "metricsFrom": [prometheus]}})
    assert ("NetworkPolicy", "restate-bootstrap") not in kinds_and_names(objects)
    assert peers_of(find(objects, "NetworkPolicy", "restate-operator")) == {9080: [external], 8081: [prometheus]}
    assert peers_of(find(objects, "NetworkPolicy", "restate-operator-watcher")) == {8082: [prometheus]}

    closed = helm.render({**base, "networkPolicy": {"metricsFrom": None}})
    for name in ("restate-operator", "restate-operator-watcher"):
        policy = find(closed, "NetworkPolicy", name)
        assert policy["spec"]["ingress"] == [], f"{name}: nothing may come in"


def test_custom_values_reach_every_object(custom: list[Obj]) -> None:
    names = kinds_and_names(custom)
    assert not [n for n in names if n[0] in {"CustomResourceDefinition", "StatefulSet", "NetworkPolicy", "Secret"}]
    assert [n for n in names if n[0] == "ConfigMap"] == [("ConfigMap", "rop-dashboard")]
    assert ("ServiceMonitor", "rop") in names
    assert ("PrometheusRule", "rop") in names  # tests/chart/test_monitoring.py looks into both

    services = find(custom, "Deployment", "rop")
    watcher = find(custom, "Deployment", "rop-watcher")
    for workload in (services, watcher):
        pod = workload["spec"]["template"]
        c = container(workload)
        assert c["image"] == "registry.example.com/restate-operator:1.2.3"
        assert c["imagePullPolicy"] == "Always"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["spec"]["affinity"] == CUSTOM["affinity"]
        assert pod["spec"]["nodeSelector"] == CUSTOM["nodeSelector"]
        assert pod["spec"]["tolerations"] == CUSTOM["tolerations"]
        assert pod["spec"]["priorityClassName"] == "operators"
        assert pod["metadata"]["annotations"]["example.com/team"] == "platform"
        assert pod["metadata"]["labels"]["team"] == "platform"
        assert workload["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"
        assert env_of(workload)["HTTPS_PROXY"] == "http://proxy.corp.internal:3128"
        assert env_of(workload)["LOG_LEVEL"] == "DEBUG"

    env = env_of(services)
    assert env["RESTATE_ADMIN_URL"] == "https://restate.example.com:9070"
    assert env["SERVICES_ADVERTISED_URL"] == f"http://rop.{NS}.svc.corp.internal:9080"
    assert env["REQUEST_IDENTITY_KEYS"] == ",".join(IDENTITY_KEYS)
    assert "REQUEST_IDENTITY_PRIVATE_KEY_FILE" not in env
    assert env["CLUSTER_DNS"] == "corp.internal"
    assert env["CANARY_IMAGE"] == "registry.example.com/alpine:3.22"
    assert env["OPERATOR_TUNNEL_CLIENT_DEFAULT_IMAGE"] == "registry.example.com/tunnel-client:0.7.0"
    assert env["AWS_POD_IDENTITY_ASSOCIATION_CLUSTER"] == "eks-prod"
    assert env["GCP_WORKLOAD_IDENTITY"] == "true"
    assert env["SHUTDOWN_GRACE_SECONDS"] == "45"
    assert env["RECONCILE_RETENTION_SECONDS"] == "600"
    assert env["STEP_DELAY_SECONDS"] == "0"
    assert "MAX_IN_FLIGHT" not in env
    assert services["spec"]["replicas"] == 2
    assert services["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 55
    assert services["spec"]["template"]["metadata"]["labels"]["app"] == "rop"
    assert container(services)["resources"] == CUSTOM["services"]["resources"]
    assert [v["name"] for v in services["spec"]["template"]["spec"]["volumes"]] == ["tmp"]

    wenv = env_of(watcher)
    assert wenv["RESTATE_INGRESS_URL"] == "https://restate.example.com:8080"
    assert wenv["RESYNC_SECONDS"] == "120"
    assert wenv["MAX_IN_FLIGHT"] == "32"
    assert "STEP_DELAY_SECONDS" not in wenv
    assert watcher["spec"]["replicas"] == 2
    assert container(watcher)["resources"] == CUSTOM["watcher"]["resources"]

    for name in ("rop", "rop-watcher"):
        account = find(custom, "ServiceAccount", name)
        assert account["metadata"]["annotations"] == CUSTOM["serviceAccount"]["annotations"]
        assert find(custom, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == "50%"

    monitor = find(custom, "ServiceMonitor", "rop")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "restate.dev/metrics": "true",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "scheme": "http",
        "interval": "30s",
        "scrapeTimeout": "10s",
        "relabelings": CUSTOM["serviceMonitor"]["relabelings"],
        "metricRelabelings": CUSTOM["serviceMonitor"]["metricRelabelings"],
    }
    # the monitor selects both metrics Services of the release
    metrics = [
        o["metadata"]["name"]
        for o in custom
        if o["kind"] == "Service"
        and endpoint["port"] in {p["name"] for p in o["spec"]["ports"]}
        and monitor["spec"]["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()
    ]
    assert sorted(metrics) == ["rop-metrics", "rop-watcher-metrics"]


def test_cloud_identity_rules_follow_the_values(default: list[Obj], custom: list[Obj]) -> None:
    def groups(objects: list[Obj], name: str) -> set[str]:
        return {g for rule in find(objects, "ClusterRole", name)["rules"] for g in rule["apiGroups"]}

    assert {"eks.services.k8s.aws", "iam.cnrm.cloud.google.com"} <= groups(custom, "rop")
    assert not {"eks.services.k8s.aws", "iam.cnrm.cloud.google.com"} & groups(default, "restate-operator")


@pytest.mark.integration  # `helm install --dry-run=client` (the only way to see NOTES) still asks a cluster
def test_notes_print_the_next_commands(stack: Stack, helm: Helm) -> None:
    kubeconfig = str(stack.control_plane.kubeconfig)
    # --take-ownership: the session stack's CRDs were applied by kubectl (as a user migrating to the chart)
    args = ["install", RELEASE, str(CHART), "--namespace", NS, "--dry-run=client", "--take-ownership"]
    result = helm.run(*args, "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    notes = result.stdout[result.stdout.index("NOTES:") :]
    assert "kubectl apply -f - <<YAML" in notes
    assert f"service: {{name: restate, namespace: {NS}}}" in notes
    assert "kubectl get rsd -A -w" in notes
    assert f"kubectl port-forward -n {NS} svc/restate 8080 9070" in notes
    assert '"$RESTATE_INGRESS_URL/DeploymentReconciler/default%2Fgreeter/reconcile"' in notes
    assert "restate state get DeploymentReconciler default/greeter" in notes
    # the example resource in the notes is a valid RestateDeployment document
    example = yaml.safe_load(notes.split("<<YAML\n")[1].split("\nYAML\n")[0])
    assert example["kind"] == "RestateDeployment"
    assert example["spec"]["restate"]["register"] == {"service": {"name": "restate", "namespace": NS}}


# --- the values schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicaCont": 2}, "replicaCont", id="typo-top-level"),
        pytest.param({"services": {"replicas": 2}}, "replicas", id="typo-nested"),
        pytest.param({"watcher": {"replicaCount": "two"}}, "/watcher/replicaCount", id="wrong-type"),
        pytest.param({"watcher": {"replicaCount": -1}}, "/watcher/replicaCount", id="negative-replicas"),
        pytest.param({"logLevel": "VERBOSE"}, "/logLevel", id="bad-log-level"),
        pytest.param({"clusterDns": "cluster_local"}, "/clusterDns", id="bad-cluster-dns"),
        pytest.param({"restate": {"adminUrl": "restate:9070"}}, "/restate/adminUrl", id="url-without-scheme"),
        pytest.param({"restate": {"identityKeys": ["abc"]}}, "/restate/identityKeys", id="bad-identity-key"),
        pytest.param({"image": {"tag": 1.2}}, "/image/tag", id="numeric-image-tag"),
        pytest.param({"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget/maxUnavailable", id="pdb-0"),
        pytest.param({"bootstrap": {"replicas": 2}}, "/bootstrap/replicas", id="restate-nodes-even"),
        pytest.param({"bootstrap": {"replicas": 0}}, "/bootstrap/replicas", id="restate-nodes-0"),
        pytest.param({"bootstrap": {"replicas": 4}}, "/bootstrap/replicas", id="restate-nodes-4"),
        pytest.param({"networkPolicy": {"restatePeers": [{"podSelectors": {}}]}}, "podSelectors", id="bad-peer"),
        pytest.param(
            {"bootstrap": {"enabled": False}, "restate": {"ingressUrl": "http://restate.restate.svc:8080"}},
            "bootstrap.enabled=false: the operator needs the URLs of the Restate it runs on; set restate.adminUrl (",
            id="external-restate-without-admin-url",
        ),
        pytest.param(
            {"bootstrap": {"enabled": False}, "restate": {"adminUrl": "http://restate.restate.svc:9070"}},
            "bootstrap.enabled=false: the operator needs the URLs of the Restate it runs on; set restate.ingressUrl (",
            id="external-restate-without-ingress-url",
        ),
        pytest.param(
            {"bootstrap": {"enabled": False}},
            "set restate.adminUrl (its admin API, e.g. http://restate.restate.svc.cluster.local:9070) and "
            "restate.ingressUrl (its ingress",
            id="external-restate-without-urls",
        ),
    ],
)
def test_mistaken_values_fail_naming_the_value(helm: Helm, values: Obj, message: str) -> None:
    result = helm.template(values)
    assert result.returncode != 0, f"rendered despite {values}"
    assert message in result.stderr, result.stderr


def test_schema_covers_every_value() -> None:
    """Each value in values.yaml is declared in values.schema.json (down to our own objects)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: Obj, path: str) -> None:
        assert node.get("description"), f"{path or '/'} has no description in the schema"
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            assert isinstance(value, dict), path
            for key, child in value.items():
                assert key in node["properties"], f"{path}/{key} is not in the schema"
                walk(child, node["properties"][key], f"{path}/{key}")

    schema["description"] = "root"
    walk(values, schema, "")


# --- against the real apiserver -------------------------------------------------------------------

MINIMAL_SERVICEMONITOR_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "listKind": "ServiceMonitorList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.mark.integration
@pytest.mark.parametrize("variant", ["default", "custom", "ha"])
def test_rendered_objects_are_accepted_by_the_apiserver(
    stack: Stack, default: list[Obj], custom: list[Obj], ha: list[Obj], release_ns: str, variant: str
) -> None:
    kube = stack.control_plane
    objects = {"default": default, "custom": custom, "ha": ha}[variant]
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    if crds:  # big: server-side (client-side apply would overflow the last-applied annotation)
        result = kube.kubectl_result(
            "apply", "--server-side", "--dry-run=server", "-o", "name", "-f", "-", input=as_list(crds, release_ns)
        )
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.split()) == len(crds)
    if any(o["kind"] == "ServiceMonitor" for o in rest):
        kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(MINIMAL_SERVICEMONITOR_CRD))
        kube.kubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    if any(o["kind"] == "PrometheusRule" for o in rest):
        kube.kubectl("apply", "--server-side", "-f", str(PROMETHEUSRULE_CRD))
        kube.kubectl("wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com")
    result = kube.kubectl_result("apply", "--dry-run=server", "-o", "name", "-f", "-", input=as_list(rest, release_ns))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == len(rest)


@pytest.mark.integration
def test_helm_release_secret_stays_well_under_the_1_mib_limit(stack: Stack, helm: Helm, release_ns: str) -> None:
    """A real `helm install` (CRDs, chart files and rendered manifest all go into the release Secret)."""
    kubeconfig = str(stack.control_plane.kubeconfig)
    release = "size"
    # images the stack's pod runner does not run: this release must not start a second operator on the
    # shared stack (tests/e2e/test_helm_install.py runs the chart for real)
    inert = [
        "--set",
        "image.repository=example.invalid/operator",
        "--set",
        "bootstrap.image.repository=example.invalid/restate",
    ]
    common = [str(CHART), "--namespace", release_ns, "--kubeconfig", kubeconfig, *inert]
    # --take-ownership: the CRDs may already be there, applied by kubectl (the session's host-process operator)
    result = helm.run("install", release, "--take-ownership", *common)
    assert result.returncode == 0, result.stderr
    try:
        secret = json.loads(
            stack.control_plane.kubectl(
                "get", "secret", "-n", release_ns, "-l", f"owner=helm,name={release}", "-o", "json"
            )
        )["items"]
        assert len(secret) == 1
        size = len(base64.b64decode(secret[0]["data"]["release"]))
        limit = 1024 * 1024
        print(f"\nhelm release Secret: {size} bytes of {limit} ({size / limit:.0%}); headroom {limit - size} bytes")
        assert size < limit * 0.75, f"release Secret is {size} bytes, too close to the 1 MiB limit"
        # the signing key survives an upgrade (looked up, not regenerated)
        identity_name = "restate-operator-request-identity"
        before = stack.control_plane.kubectl("get", "secret", "-n", release_ns, identity_name, "-o", "json")
        upgrade = helm.run("upgrade", release, *common)
        assert upgrade.returncode == 0, upgrade.stderr
        after = stack.control_plane.kubectl("get", "secret", "-n", release_ns, identity_name, "-o", "json")
        assert json.loads(before)["data"] == json.loads(after)["data"]
    finally:
        uninstall = helm.run("uninstall", release, "--namespace", release_ns, "--kubeconfig", kubeconfig)
    assert uninstall.returncode == 0, uninstall.stderr
    # uninstall keeps the CRDs
    for crd in (
        "restateclusters.restate.dev",
        "restatedeployments.restate.dev",
        "restatecloudenvironments.restate.dev",
    ):
        assert (
            stack.control_plane.kubectl("get", "crd", crd, "-o", "name").strip()
            == f"customresourcedefinition.apiextensions.k8s.io/{crd}"
        )
