"""RestateCluster cloud identities against minimal versions of the third-party CRDs (ACK's
PodIdentityAssociation, SecurityGroupPolicy, Config Connector's IAMPolicyMember) installed in the
test apiserver. Their controllers are played by the test: it sets the status conditions they would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from tests.helpers import apply, condition, get
from tests.integration.test_cluster import cluster, storage_class, wait_for

pytestmark = pytest.mark.integration
__all__ = ["storage_class"]

THIRD_PARTY = [
    ("eks.services.k8s.aws", "v1alpha1", "PodIdentityAssociation", "podidentityassociations"),
    ("vpcresources.k8s.aws", "v1beta1", "SecurityGroupPolicy", "securitygrouppolicies"),
    ("iam.cnrm.cloud.google.com", "v1beta1", "IAMPolicyMember", "iampolicymembers"),
]
ROLE = "arn:aws:iam::123456789012:role/restate"


def minimal_crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


@pytest.fixture
def cluster_name(operator: Operator) -> Iterator[str]:
    name = f"id-{uuid.uuid4().hex[:6]}"
    yield name
    operator.stack.control_plane.kubectl("delete", "rsc", name, "--ignore-not-found", "--wait=false")


SIGNING_PROVIDER = {"version": "v1", "secretProvider": {"provider": "aws", "path": "key.pem"}}


@pytest.mark.parametrize(
    ("security", "crd", "installs"),
    [
        pytest.param(
            {"requestSigningPrivateKey": SIGNING_PROVIDER},
            "secretproviderclasses.secrets-store.csi.x-k8s.io",  # no test installs it
            "the Secrets Store CSI driver",
            id="secret-provider-class",
        ),
        pytest.param(
            {"awsPodSecurityGroups": ["sg-1"]},
            "securitygrouppolicies.vpcresources.k8s.aws",  # installed by third_party_crds, later in this module
            "the AWS VPC resource controller",
            id="security-group-policy",
        ),
    ],
)
def test_missing_third_party_crd_is_named_and_the_cluster_runs_without_it(
    operator: Operator, cluster_name: str, storage_class: str, security: dict[str, Any], crd: str, installs: str
) -> None:
    """As upstream: the integration is skipped and the rest applied; we also say what to install."""
    stack, ns = operator.stack, cluster_name
    if get(stack, "crd", crd) is not None:
        pytest.skip(f"{crd} is installed in this run")
    apply(stack, cluster(ns, storage_class, security=security))
    obj = wait_for(stack, ns, "Ready", "True")
    missing = condition(obj, "MissingCRDs")
    assert missing["status"] == "True"
    assert f"({crd}) is not installed: install {installs}" in missing["message"]
    assert condition(obj, "Degraded")["status"] == "False"
    assert get(stack, "service", "restate", ns) is not None
    assert get(stack, "service", "restate-cluster", ns) is not None
    template = get(stack, "statefulset", "restate", ns)["spec"]["template"]  # type: ignore[index]
    assert "restate.dev/aws-security-groups" not in (template["metadata"].get("annotations") or {})
    assert not [v for v in template["spec"]["volumes"] if "csi" in v], "no volume nothing could mount"


@pytest.fixture(scope="module")
def third_party_crds(operator: Operator) -> None:
    cp = operator.stack.control_plane
    for crd in THIRD_PARTY:
        cp.kubectl("apply", "-f", "-", input=json.dumps(minimal_crd(*crd)))
    cp.kubectl("wait", "--for=condition=Established", "crd", *[f"{c[3]}.{c[0]}" for c in THIRD_PARTY])


def set_condition(stack: Stack, kind: str, name: str, namespace: str, type_: str) -> None:
    patch = {"status": {"conditions": [{"type": type_, "status": "True"}]}}
    stack.control_plane.kubectl(
        "patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )


def reason(stack: Stack, name: str) -> str:
    return str(condition(get(stack, "rsc", name), "Ready").get("reason"))


def test_aws_pod_identity_waits_for_ack_and_a_canary_then_rolls_the_pods(
    operator: Operator, cluster_name: str, storage_class: str, third_party_crds: None
) -> None:
    stack, ns = operator.stack, cluster_name
    apply(
        stack,
        cluster(
            ns,
            storage_class,
            security={"awsPodIdentityAssociationRoleArn": ROLE, "awsPodSecurityGroups": ["sg-1", "sg-2"]},
        ),
    )
    procs.wait_until("not synced", lambda: reason(stack, ns) == "PodIdentityAssociationNotSynced", timeout=60)
    pia = get(stack, "podidentityassociations.eks.services.k8s.aws", "restate", ns)
    assert pia is not None
    assert pia["spec"] == {"clusterName": "eks-test", "namespace": ns, "serviceAccount": "restate", "roleARN": ROLE}
    sgp = get(stack, "securitygrouppolicies.vpcresources.k8s.aws", "restate", ns)
    assert sgp is not None
    assert sgp["spec"]["securityGroups"] == {"groupIds": ["sg-1", "sg-2"]}
    egress = get(stack, "networkpolicy", "allow-restate-egress-to-aws-pod-identity", ns)
    assert egress is not None
    assert egress["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "169.254.170.23/32"}}]
    assert get(stack, "statefulset", "restate", ns) is None, "no pods before their identity works"

    set_condition(stack, "podidentityassociations.eks.services.k8s.aws", "restate", ns, "ACK.ResourceSynced")
    obj = wait_for(stack, ns, "Ready", "True", timeout=90)  # the canary Job completes (kwok), then the nodes start
    job = get(stack, "job", "restate-pia-canary", ns)
    assert job is not None
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "restate"
    annotations = get(stack, "statefulset", "restate", ns)["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["restate.dev/aws-pod-identity-association-role-arn"] == ROLE
    assert annotations["restate.dev/aws-security-groups"] == "sg-1,sg-2"
    assert obj["status"]["readyReplicas"] == 1

    apply(stack, cluster(ns, storage_class))  # both removed from the spec: their objects go
    procs.wait_until(
        "identity objects deleted",
        lambda: (
            get(stack, "podidentityassociations.eks.services.k8s.aws", "restate", ns) is None
            and get(stack, "securitygrouppolicies.vpcresources.k8s.aws", "restate", ns) is None
        ),
        timeout=60,
    )


def test_gcp_workload_identity_binds_the_service_account(
    operator: Operator, cluster_name: str, storage_class: str, third_party_crds: None
) -> None:
    stack, ns = operator.stack, cluster_name
    email = "restate@my-project.iam.gserviceaccount.com"
    apply(
        stack,
        cluster(ns, storage_class, security={"serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": email}}),
    )
    procs.wait_until("member not ready", lambda: reason(stack, ns) == "IAMPolicyMemberNotReady", timeout=60)
    member = get(stack, "iampolicymembers.iam.cnrm.cloud.google.com", "restate-workload-identity", ns)
    assert member is not None
    assert member["metadata"]["annotations"]["cnrm.cloud.google.com/project-id"] == "my-project"
    assert member["spec"] == {
        "member": f"serviceAccount:my-project.svc.id.goog[{ns}/restate]",
        "role": "roles/iam.workloadIdentityUser",
        "resourceRef": {"kind": "IAMServiceAccount", "external": f"projects/my-project/serviceAccounts/{email}"},
    }
    account = get(stack, "serviceaccount", "restate", ns)
    assert account is not None
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == email
    set_condition(stack, "iampolicymembers.iam.cnrm.cloud.google.com", "restate-workload-identity", ns, "Ready")
    wait_for(stack, ns, "Ready", "True", timeout=90)
    assert get(stack, "job", "restate-wi-canary", ns) is not None


def test_changed_tolerations_recreate_the_canary_job_and_reach_the_nodes(
    operator: Operator, cluster_name: str, storage_class: str, third_party_crds: None
) -> None:
    """A Job's pod template is immutable: the changed canary is re-created instead of failing the cluster."""
    stack, ns = operator.stack, cluster_name
    security = {"awsPodIdentityAssociationRoleArn": ROLE}
    apply(stack, cluster(ns, storage_class, security=security))
    procs.wait_until("not synced", lambda: reason(stack, ns) == "PodIdentityAssociationNotSynced", timeout=60)
    set_condition(stack, "podidentityassociations.eks.services.k8s.aws", "restate", ns, "ACK.ResourceSynced")
    wait_for(stack, ns, "Ready", "True", timeout=90)
    first = get(stack, "job", "restate-pia-canary", ns)
    assert first is not None

    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "restate", "effect": "NoSchedule"}]
    apply(stack, cluster(ns, storage_class, security=security, compute={"tolerations": tolerations}))

    def nodes_tolerate() -> bool:
        sts = get(stack, "statefulset", "restate", ns)
        return bool(sts and sts["spec"]["template"]["spec"].get("tolerations") == tolerations)

    procs.wait_until("tolerations reach the StatefulSet", nodes_tolerate, timeout=90)
    job = get(stack, "job", "restate-pia-canary", ns)
    assert job is not None
    assert job["metadata"]["uid"] != first["metadata"]["uid"], "re-created"
    assert job["spec"]["template"]["spec"]["tolerations"] == tolerations
    obj = wait_for(stack, ns, "Ready", "True", timeout=90)
    assert condition(obj, "Degraded")["status"] == "False"


def test_malformed_gcp_service_account_is_degraded(
    operator: Operator, cluster_name: str, storage_class: str, third_party_crds: None
) -> None:
    stack, ns = operator.stack, cluster_name
    apply(
        stack,
        cluster(ns, storage_class, security={"serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": "nope"}}),
    )
    obj = wait_for(stack, ns, "Degraded", "True")
    assert "is not a GCP service account email" in condition(obj, "Degraded")["message"]
