"""Cloud identity builders: when each integration applies, and what it creates."""

from __future__ import annotations

from typing import Any

import pytest

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
    with pytest.raises(ValueError, match="not a GCP service account email"):
        identity.gcp_project(email)


def test_canary_job_uses_the_nodes_account_and_tolerations() -> None:
    job = identity.canary_job(rsc(), ON, identity.PIA_CANARY, identity.PIA_SCRIPT)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 1
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == identity.PIA_CANARY
    assert (pod["serviceAccountName"], pod["restartPolicy"]) == ("restate", "Never")
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["containers"][0]["command"] == ["sh", "-c", identity.PIA_SCRIPT]
