"""Cloud identity builders: when each integration applies, and what it creates."""

from __future__ import annotations

from typing import Any

import pytest

from services import errors
from services.builders.cluster import identity
from services.settings import Settings

ON = Settings(aws_pod_identity_association_cluster="eks", gcp_workload_identity=True)
OFF = Settings()


def rsc(**security: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1",
        "kind": "RestateCluster",
        "metadata": {"name": "prod", "uid": "u1"},
        "spec": {
            "compute": {"image": "r:1", "tolerations": [{"operator": "Exists"}]},
            "storage": {"storageRequestBytes": 1},
            "security": security,
        },
    }


def test_integrations_need_both_the_operator_setting_and_the_spec() -> None:
    spec = rsc(
        awsPodIdentityAssociationRoleArn="arn:role",
        serviceAccountAnnotations={identity.GCP_ANNOTATION: "a@p.iam.gserviceaccount.com"},
    )
    assert identity.pia_role(spec, ON) == "arn:role"
    assert identity.pia_role(spec, OFF) is None
    assert identity.gcp_service_account(spec, ON) == "a@p.iam.gserviceaccount.com"
    assert identity.gcp_service_account(spec, OFF) is None
    assert identity.pod_annotations(spec, OFF) == {}
    assert identity.pod_annotations(spec, ON) == {
        "restate.dev/aws-pod-identity-association-cluster": "eks",
        "restate.dev/aws-pod-identity-association-role-arn": "arn:role",
        "restate.dev/gcp-service-account": "a@p.iam.gserviceaccount.com",
    }


@pytest.mark.parametrize("email", ["nope", "a@gmail.com", "@.iam.gserviceaccount.com"])
def test_gcp_project_needs_a_service_account_email(email: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="not a GCP service account email"):
        identity.gcp_project(email)


def test_an_integration_whose_crd_is_not_served_leaves_no_pod_annotation() -> None:
    spec = rsc(
        awsPodIdentityAssociationRoleArn="arn:role",
        awsPodSecurityGroups=["sg-1"],
        serviceAccountAnnotations={identity.GCP_ANNOTATION: "a@p.iam.gserviceaccount.com"},
    )
    assert identity.pod_annotations(spec, ON, frozenset({"PodIdentityAssociation", "IAMPolicyMember"})) == {
        "restate.dev/aws-security-groups": "sg-1"
    }
    assert identity.pod_annotations(spec, ON, frozenset({"SecurityGroupPolicy"})) == {
        "restate.dev/aws-pod-identity-association-cluster": "eks",
        "restate.dev/aws-pod-identity-association-role-arn": "arn:role",
        "restate.dev/gcp-service-account": "a@p.iam.gserviceaccount.com",
    }


def test_canary_job_is_upstreams_with_the_nodes_account_and_tolerations() -> None:
    """The pod template is immutable: one differing from upstream's would force re-creating its Job."""
    job = identity.canary_job(rsc(), ON, identity.PIA_CANARY, identity.PIA_COMMAND)
    assert job["spec"]["backoffLimit"] == 1
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == identity.PIA_CANARY
    assert job["spec"]["template"] == {
        "spec": {
            "serviceAccountName": "restate",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "canary",
                    "image": "alpine:3.21",
                    "command": ["grep", "-q", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/proc/self/environ"],
                }
            ],
            "tolerations": [{"operator": "Exists"}],
        }
    }
