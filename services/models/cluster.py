"""`RestateCluster` (restate.dev/v1, cluster-scoped): a Restate cluster in a namespace of its own."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from services.models.common import (
    Affinity,
    Condition,
    Container,
    EnvVar,
    Lifecycle,
    LocalObjectReference,
    Model,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    PodDNSConfig,
    ResourceRequirements,
    SecretKeyRef,
    StringMap,
    Toleration,
    TopologySpreadConstraint,
    Volume,
    VolumeMount,
    rules,
)


class ClusterOptions(Model):
    auto_provision: bool = Field(
        default=False,
        description=(
            "Provision the Restate cluster through the node gRPC API once pod restate-0 runs. Requires the "
            "config to set `auto-provision = false` (or RESTATE_AUTO_PROVISION=false) so nodes never "
            "provision themselves."
        ),
    )


class Storage(Model):
    storage_request_bytes: int = Field(
        ge=1,
        description="Size of each node's volume in bytes; it may grow (expanded online) but never shrink.",
        json_schema_extra=rules(("self >= oldSelf", "storageRequestBytes cannot be decreased")),
    )
    storage_class_name: str | None = Field(
        default=None,
        description="StorageClass of the volumes; immutable (a StatefulSet's claim template cannot change).",
    )
    volume_attributes_class_name: str | None = Field(
        default=None,
        description="VolumeAttributesClass of the volumes; changes are applied to existing claims.",
    )


STORAGE_CLASS_IMMUTABLE = (
    "has(self.storageClassName) == has(oldSelf.storageClassName) && "
    "(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
    "storageClassName is immutable",
)


class Compute(Model):
    image: str = Field(
        min_length=1, description="Restate server container image, e.g. docker.io/restatedev/restate:1.7."
    )
    replicas: int = Field(default=1, ge=0, description="Number of Restate nodes (StatefulSet replicas).")
    command: list[str] | None = Field(default=None, description="Overrides the image's entrypoint.")
    args: list[str] | None = Field(default=None, description="Overrides the image's arguments.")
    image_pull_policy: str | None = Field(
        default=None, description="Always, IfNotPresent or Never.", pattern="^(Always|IfNotPresent|Never)$"
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, description="Secrets for pulling the image."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        description="Extra environment variables; one named like an operator default replaces that default.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(default=None, description="Resources of the Restate container.")
    annotations: StringMap | None = Field(
        default=None, description="Pod annotations; the operator's own annotations win on conflict."
    )
    labels: StringMap | None = Field(default=None, description="Pod labels; the operator's own labels win on conflict.")
    dns_config: PodDNSConfig | None = Field(default=None, description="Pod DNS configuration.")
    dns_policy: str | None = Field(
        default=None,
        description="Pod DNS policy.",
        pattern="^(ClusterFirstWithHostNet|ClusterFirst|Default|None)$",
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Pod tolerations (canary Jobs get them too)."
    )
    node_selector: StringMap | None = Field(
        default=None,
        description="Node labels the pods must match.",
        json_schema_extra={"x-kubernetes-map-type": "atomic"},
    )
    affinity: Affinity | None = Field(default=None, description="Pod scheduling constraints.")
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None, description="How pods spread across topology domains."
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    lifecycle: Lifecycle | None = Field(default=None, description="postStart/preStop hooks of the Restate container.")
    sidecars: list[Container] | None = Field(
        default=None,
        description="Native sidecars: added as init containers with restartPolicy Always.",
    )
    termination_grace_period_seconds: int = Field(
        default=60, ge=0, description="Seconds a node gets to shut down cleanly."
    )
    extra_volumes: list[Volume] | None = Field(
        default=None,
        description="Extra pod volumes. Names must not collide with the operator's (storage, config, ...).",
    )
    extra_volume_mounts: list[VolumeMount] | None = Field(
        default=None,
        description="Extra mounts of the Restate container; paths must not collide with the operator's.",
    )


class NetworkPeers(Model):
    """Who may connect. Unset: nobody (beyond the defaults); an empty list: everybody."""

    ingress: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Peers allowed to reach the ingress port 8080. Unset: nobody; []: everybody.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    admin: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Peers allowed to reach the admin port 9070. Unset: nobody; []: everybody.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    node: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Extra peers allowed to reach the node port 5122. Unset: nobody; []: everybody.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    metrics: list[NetworkPolicyPeer] | None = Field(
        default=None,
        description="Deprecated alias of `node`; `node` wins when both are set.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )


class NetworkEgressRule(Model):
    ports: list[NetworkPolicyPort] | None = Field(default=None, description="Destination ports; unset means all.")
    to: list[NetworkPolicyPeer] | None = Field(default=None, description="Destinations; unset means all.")


class SecretProvider(Model):
    provider: str | None = Field(default=None, description="CSI Secrets Store provider, e.g. aws or vault.")
    parameters: StringMap | None = Field(default=None, description="Provider-specific parameters.")
    path: str = Field(min_length=1, description="Path of the key file inside the mounted volume.")


class RequestSigningPrivateKey(Model):
    """Exactly one of `secret` and `secretProvider`."""

    version: str = Field(description="Key format version; only v1 exists.", pattern="^v1$")
    secret: SecretKeyRef | None = Field(
        default=None, description="Secret in the cluster's namespace holding the PEM private key."
    )
    secret_provider: SecretProvider | None = Field(
        default=None, description="The key from a CSI Secrets Store SecretProviderClass."
    )


SIGNING_KEY_ONE_SOURCE = (
    "has(self.secret) != has(self.secretProvider)",
    "exactly one of secret and secretProvider must be set",
)


class Security(Model):
    disable_network_policies: bool = Field(
        default=False, description="Create no NetworkPolicies (and delete those the operator created)."
    )
    allow_operator_access_to_admin: bool = Field(
        default=True,
        description="Let the operator reach the admin port (needed to register RestateDeployments).",
    )
    network_peers: NetworkPeers | None = Field(default=None, description="Who may reach the cluster's ports.")
    network_egress_rules: list[NetworkEgressRule] | None = Field(
        default=None,
        description="Extra egress rules for the Restate pods; a single empty rule allows all egress.",
    )
    service_annotations: StringMap | None = Field(default=None, description="Extra annotations on Service restate.")
    service_account_annotations: StringMap | None = Field(
        default=None,
        description=(
            "Extra annotations on ServiceAccount restate; iam.gke.io/gcp-service-account enables GCP "
            "Workload Identity automation."
        ),
    )
    aws_pod_identity_association_role_arn: str | None = Field(
        default=None, description="AWS: create an EKS PodIdentityAssociation for this IAM role (needs ACK)."
    )
    aws_pod_security_groups: list[str] | None = Field(
        default=None, description="AWS: security group ids for a SecurityGroupPolicy on the pods."
    )
    request_signing_private_key: RequestSigningPrivateKey | None = Field(
        default=None,
        description="Private key Restate signs requests to services with.",
        json_schema_extra=rules(SIGNING_KEY_ONE_SOURCE),
    )
    trusted_ca_certs: list[SecretKeyRef] | None = Field(
        default=None, description="Extra PEM CA certificates, appended to the system bundle."
    )


class RestateClusterSpec(Model):
    cluster_name: str | None = Field(
        default=None, description="RESTATE_CLUSTER_NAME of the nodes; defaults to the resource name."
    )
    cluster: ClusterOptions | None = Field(default=None, description="Cluster-wide options.")
    config: str | None = Field(
        default=None, description="Restate server configuration (TOML), mounted at /config/config.toml."
    )
    storage: Storage = Field(
        description="Each node's persistent volume.",
        json_schema_extra=rules(STORAGE_CLASS_IMMUTABLE),
    )
    compute: Compute = Field(description="The Restate pods.")
    security: Security | None = Field(default=None, description="Network policies, identities and keys.")


class ProvisionedConfiguration(Model):
    """What the cluster was provisioned with (fixed afterwards), as Restate reported it."""

    num_partitions: int | None = Field(default=None, description="Number of partitions.")
    partition_replication: str | None = Field(default=None, description="Replication of partition processors.")
    log_provider: str | None = Field(default=None, description="Bifrost log provider.")
    log_replication: str | None = Field(default=None, description="Replication of the log.")


class RestateClusterStatus(Model):
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Progressing and Degraded, each with the generation it was computed for.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    provisioned: bool | None = Field(default=None, description="The cluster was provisioned by the operator.")
    replicas: int | None = Field(default=None, description="Restate pods that exist.")
    ready_replicas: int | None = Field(default=None, description="Restate pods that are ready.")
    config_hash: str | None = Field(default=None, description="Hash of the configuration the pods run with.")
    provisioned_configuration: ProvisionedConfiguration | None = Field(
        default=None, description="What the operator provisioned the cluster with; compared with spec.config."
    )


class RestateCluster(Model):
    """A Restate cluster: a namespace named after the resource holding a StatefulSet of Restate nodes."""

    api_version: str = "restate.dev/v1"
    kind: str = "RestateCluster"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RestateClusterSpec
    status: RestateClusterStatus | None = None
