"""Cloud identities for the Restate pods: AWS EKS Pod Identity, AWS security groups, GCP Workload Identity.

Each integration is a third-party custom resource (ACK's PodIdentityAssociation, the VPC resource
controller's SecurityGroupPolicy, Config Connector's IAMPolicyMember) plus, where a credential must
really work before the nodes rely on it, a canary Job that checks it from a pod with the same
ServiceAccount. Pod annotations carry the inputs, so a change rolls the pods.
"""

from __future__ import annotations

from services import errors
from services.builders.cluster.common import Obj, mandatory_labels, metadata, namespace_of
from services.settings import Settings

PIA_CANARY = "restate-pia-canary"
WI_CANARY = "restate-wi-canary"
GCP_ANNOTATION = "iam.gke.io/gcp-service-account"
PIA_EGRESS_POLICY = "allow-restate-egress-to-aws-pod-identity"


def pia_role(rsc: Obj, settings: Settings) -> str | None:
    """The IAM role to associate, when both the operator and the spec ask for it."""
    role = (rsc["spec"].get("security") or {}).get("awsPodIdentityAssociationRoleArn")
    return role if role and settings.aws_pod_identity_association_cluster else None


def security_groups(rsc: Obj) -> list[str]:
    return list((rsc["spec"].get("security") or {}).get("awsPodSecurityGroups") or [])


def gcp_service_account(rsc: Obj, settings: Settings) -> str | None:
    annotations = (rsc["spec"].get("security") or {}).get("serviceAccountAnnotations") or {}
    email = annotations.get(GCP_ANNOTATION)
    return email if email and settings.gcp_workload_identity else None


def gcp_project(email: str) -> str:
    """`sa@project.iam.gserviceaccount.com` -> `project`; `InvalidSpec` when it is not such an address."""
    _, _, domain = email.partition("@")
    project = domain.removesuffix(".iam.gserviceaccount.com")
    if not project or project == domain:
        raise errors.InvalidSpec(
            f"spec.security.serviceAccountAnnotations: {GCP_ANNOTATION} {email!r} is not a GCP service account "
            "email (name@project.iam.gserviceaccount.com)"
        )
    return project


def pod_identity_association(rsc: Obj, settings: Settings, role: str) -> Obj:
    return {
        "apiVersion": "eks.services.k8s.aws/v1alpha1",
        "kind": "PodIdentityAssociation",
        "metadata": metadata(rsc, "restate"),
        "spec": {
            "clusterName": settings.aws_pod_identity_association_cluster,
            "namespace": namespace_of(rsc),
            "serviceAccount": "restate",
            "roleARN": role,
        },
    }


def security_group_policy(rsc: Obj, groups: list[str]) -> Obj:
    return {
        "apiVersion": "vpcresources.k8s.aws/v1beta1",
        "kind": "SecurityGroupPolicy",
        "metadata": metadata(rsc, "restate"),
        "spec": {"podSelector": {"matchLabels": mandatory_labels(rsc)}, "securityGroups": {"groupIds": groups}},
    }


def iam_policy_member(rsc: Obj, email: str) -> Obj:
    project = gcp_project(email)
    return {
        "apiVersion": "iam.cnrm.cloud.google.com/v1beta1",
        "kind": "IAMPolicyMember",
        "metadata": metadata(
            rsc, "restate-workload-identity", annotations={"cnrm.cloud.google.com/project-id": project}
        ),
        "spec": {
            "member": f"serviceAccount:{project}.svc.id.goog[{namespace_of(rsc)}/restate]",
            "role": "roles/iam.workloadIdentityUser",
            "resourceRef": {"kind": "IAMServiceAccount", "external": f"projects/{project}/serviceAccounts/{email}"},
        },
    }


def pia_egress_policy(rsc: Obj) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(rsc, PIA_EGRESS_POLICY),
        "spec": {
            "podSelector": {"matchLabels": mandatory_labels(rsc)},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}], "ports": [{"protocol": "TCP", "port": 80}]}
            ],
        },
    }


def canary_job(rsc: Obj, settings: Settings, name: str, command: list[str]) -> Obj:
    """A one-shot pod with the nodes' ServiceAccount that succeeds only if the credential works.

    Its pod template is upstream's exactly (no metadata of ours): a Job's template is immutable, so
    any difference would force re-creating a Job taken over from upstream."""
    meta = metadata(rsc, name)
    meta["labels"]["app.kubernetes.io/name"] = name
    pod: Obj = {
        "serviceAccountName": "restate",
        "restartPolicy": "Never",
        "containers": [{"name": "canary", "image": settings.canary_image, "command": command}],
    }
    if tolerations := rsc["spec"]["compute"].get("tolerations"):
        pod["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"backoffLimit": 1, "template": {"spec": pod}},
    }


# Upstream's canary commands, verbatim (see canary_job).
PIA_COMMAND = ["grep", "-q", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/proc/self/environ"]
WI_COMMAND = [
    "wget",
    "--header",
    "Metadata-Flavor: Google",
    "-q",
    "-O",
    "/dev/null",
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
]


def pod_annotations(rsc: Obj, settings: Settings, missing_crds: frozenset[str] = frozenset()) -> dict[str, str]:
    """Inputs of the identities in effect, on the pod template so that changing them rolls the pods.

    An integration whose CRD is not served is not in effect: no annotation, so the pods roll (and
    get it) once the CRD is installed and the integration works."""
    annotations: dict[str, str] = {}
    if (role := pia_role(rsc, settings)) and "PodIdentityAssociation" not in missing_crds:
        annotations["restate.dev/aws-pod-identity-association-cluster"] = str(
            settings.aws_pod_identity_association_cluster
        )
        annotations["restate.dev/aws-pod-identity-association-role-arn"] = role
    if (groups := security_groups(rsc)) and "SecurityGroupPolicy" not in missing_crds:
        annotations["restate.dev/aws-security-groups"] = ",".join(groups)
    if (email := gcp_service_account(rsc, settings)) and "IAMPolicyMember" not in missing_crds:
        annotations["restate.dev/gcp-service-account"] = email
    return annotations
