"""The operator's configuration, read once from the environment into one frozen object.

Every field is documented where it is declared; the README's configuration table mirrors these.
"""

from __future__ import annotations

import os
import re
import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    operator_namespace: str = Field(default="restate-operator")
    """OPERATOR_NAMESPACE: where tunnel Deployments and Restate Cloud token Secrets live."""

    cluster_dns: str = Field(default="cluster.local")
    """CLUSTER_DNS: the cluster's DNS suffix, used in every in-cluster URL the operator builds."""

    tunnel_client_default_image: str = Field(default="ghcr.io/restatedev/restate-cloud-tunnel-client:0.6.0")
    """OPERATOR_TUNNEL_CLIENT_DEFAULT_IMAGE: tunnel image when a RestateCloudEnvironment names none."""

    canary_image: str = "alpine:3.21"
    """CANARY_IMAGE: runs the trusted-CA init container (needs sh, cat and the system CA bundle)."""

    operator_label_name: str | None = None
    """OPERATOR_LABEL_NAME: a label key of the operator's pods, so network policies can let it in."""

    operator_label_value: str | None = None
    """OPERATOR_LABEL_VALUE: that label's value; without both, no operator peer is added."""

    aws_pod_identity_association_cluster: str | None = None
    """AWS_POD_IDENTITY_ASSOCIATION_CLUSTER: the EKS cluster name; enables PodIdentityAssociations (needs ACK)."""

    gcp_workload_identity: bool = False
    """GCP_WORKLOAD_IDENTITY: manage IAMPolicyMembers for GCP Workload Identity (needs Config Connector)."""

    kubeconfig: str | None = None
    """KUBECONFIG: a kubeconfig file; unset means in-cluster (or ~/.kube/config outside a cluster)."""

    bind: str = "0.0.0.0:9080"
    """SERVICES_BIND: where the Restate handlers are served (register this address with Restate)."""

    probes_bind: str = "0.0.0.0:8081"
    """PROBES_BIND: /healthz, /readyz and /metrics, apart from the Restate endpoint."""

    pod_name: str = Field(default_factory=socket.gethostname)
    """POD_NAME: reported as the Events' reportingInstance (the Helm chart sets it from the downward API)."""

    restate_admin_url: str | None = None
    """RESTATE_ADMIN_URL: the bootstrap Restate's admin API; when set, this process registers
    SERVICES_ADVERTISED_URL there at start-up (and on every restart), so no install step is manual."""

    advertised_url: str | None = None
    """SERVICES_ADVERTISED_URL: the URL the bootstrap Restate calls this process at (the chart's Service)."""

    request_identity_keys: tuple[str, ...] = ()
    """REQUEST_IDENTITY_KEYS: comma-separated `publickeyv1_…` keys; when any key is known, only requests
    signed by the matching Restate server are served (everyone else gets 401)."""

    request_identity_private_key_file: str | None = None
    """REQUEST_IDENTITY_PRIVATE_KEY_FILE: the bootstrap Restate's ed25519 signing key (PEM); its public key
    is added to the keys above. The chart mounts the key it generated for the bootstrap Restate."""

    step_delay_seconds: float = 0.0
    """STEP_DELAY_SECONDS: a durable pause after each write, for fault-injection tests; keep 0.

    WARNING: changing it while reconciles are in flight breaks their journal replay (the pauses are
    journaled steps), which blocks those resources until the retry policy gives up."""

    shutdown_grace_seconds: float = 20.0
    """SHUTDOWN_GRACE_SECONDS: how long SIGTERM waits for in-flight invocations before closing streams."""

    reconcile_retention_seconds: int = 3600
    """RECONCILE_RETENTION_SECONDS: how long the bootstrap Restate keeps a finished pass (its journal,
    for `restate invocations describe`, and its idempotency key, which dedupes repeated requests).
    It keeps about resources x retention / RESYNC_SECONDS of them; shorten it for thousands of resources."""

    @field_validator("cluster_dns")
    @classmethod
    def _dns_suffix(cls, value: str) -> str:
        if not value or not re.fullmatch(r"[A-Za-z0-9.-]+", value):
            raise ValueError(f"CLUSTER_DNS must be a DNS suffix like cluster.local, not {value!r}")
        return value

    @field_validator("reconcile_retention_seconds")
    @classmethod
    def _a_minute_at_least(cls, value: int) -> int:
        if value < 60:
            raise ValueError(f"RECONCILE_RETENTION_SECONDS must be at least 60 (seconds), not {value}")
        return value

    @field_validator("restate_admin_url", "advertised_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/]", value):
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _registration_needs_a_url(self) -> Settings:
        if self.restate_admin_url and not self.advertised_url:
            raise ValueError("RESTATE_ADMIN_URL is set but SERVICES_ADVERTISED_URL is not: Restate needs a URL to call")
        return self

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        values = {
            "operator_namespace": env.get("OPERATOR_NAMESPACE"),
            "cluster_dns": env.get("CLUSTER_DNS"),
            "tunnel_client_default_image": env.get("OPERATOR_TUNNEL_CLIENT_DEFAULT_IMAGE"),
            "kubeconfig": env.get("KUBECONFIG"),
            "aws_pod_identity_association_cluster": env.get("AWS_POD_IDENTITY_ASSOCIATION_CLUSTER"),
            "gcp_workload_identity": env.get("GCP_WORKLOAD_IDENTITY"),
            "canary_image": env.get("CANARY_IMAGE"),
            "operator_label_name": env.get("OPERATOR_LABEL_NAME"),
            "operator_label_value": env.get("OPERATOR_LABEL_VALUE"),
            "bind": env.get("SERVICES_BIND"),
            "probes_bind": env.get("PROBES_BIND"),
            "pod_name": env.get("POD_NAME"),
            "step_delay_seconds": env.get("STEP_DELAY_SECONDS"),
            "shutdown_grace_seconds": env.get("SHUTDOWN_GRACE_SECONDS"),
            "reconcile_retention_seconds": env.get("RECONCILE_RETENTION_SECONDS"),
            "restate_admin_url": env.get("RESTATE_ADMIN_URL"),
            "advertised_url": env.get("SERVICES_ADVERTISED_URL"),
            "request_identity_keys": tuple(k.strip() for k in env["REQUEST_IDENTITY_KEYS"].split(",") if k.strip())
            if env.get("REQUEST_IDENTITY_KEYS")
            else None,
            "request_identity_private_key_file": env.get("REQUEST_IDENTITY_PRIVATE_KEY_FILE"),
        }
        return cls.model_validate({k: v for k, v in values.items() if v is not None})
