"""`RestateCloudEnvironment` (restate.dev/v1beta1, cluster-scoped): a Restate Cloud environment and its tunnel."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from services.models.common import (
    DNS_SUBDOMAIN_PATTERN,
    Affinity,
    Condition,
    EnvVar,
    Model,
    PodDNSConfig,
    ResourceRequirements,
    StringMap,
    Toleration,
)

# The tunnel Deployment is named `tunnel-<name>`, a DNS label of at most 63 characters.
MAX_NAME_LENGTH = 56


class SecretRef(Model):
    name: str = Field(min_length=1, description="Name of the Secret, in the operator's namespace.")
    key: str = Field(min_length=1, description="Key holding the Restate Cloud API token.")


class Authentication(Model):
    secret: SecretRef = Field(description="The Secret holding the API token.")


class Tunnel(Model):
    remote_proxy: bool = Field(
        default=False,
        description="Also expose unauthenticated proxy ports 8080 (ingress) and 9070 (admin) of the environment.",
    )
    replicas: int = Field(default=1, ge=0, description="Tunnel client replicas.")
    image: str | None = Field(default=None, description="Tunnel client image; the operator's default otherwise.")
    image_pull_policy: str | None = Field(
        default=None, pattern="^(Always|IfNotPresent|Never)$", description="Always, IfNotPresent or Never."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        description="Extra environment; a name equal to a default replaces it.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Defaults to requests cpu 1 / memory 1Gi and limits cpu 2 / memory 2Gi."
    )
    dns_config: PodDNSConfig | None = None
    dns_policy: str | None = Field(default=None, pattern="^(ClusterFirstWithHostNet|ClusterFirst|Default|None)$")
    tolerations: list[Toleration] | None = None
    node_selector: StringMap | None = Field(default=None, json_schema_extra={"x-kubernetes-map-type": "atomic"})
    affinity: Affinity | None = None


class RestateCloudEnvironmentSpec(Model):
    environment_id: str = Field(
        pattern="^(env_)?[0-9a-z]+$", description="The environment id, env_... (the prefix may be left out)."
    )
    region: str = Field(
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Region of the environment, e.g. eu or us (BYOC: xyz.byoc).",
    )
    signing_public_key: str = Field(
        pattern="^publickeyv1_[0-9A-Za-z]+$",
        description="The environment's request-signing public key, publickeyv1_...; not a secret.",
    )
    authentication: Authentication = Field(description="How the operator authenticates to Restate Cloud.")
    tunnel: Tunnel | None = Field(default=None, description="The tunnel client Deployment.")


class RestateCloudEnvironmentStatus(Model):
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Progressing and Degraded, each with the generation it was computed for.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    admin_url: str | None = Field(
        default=None, description="The environment's admin API, which RestateDeployments with register.cloud call."
    )
    ingress_url: str | None = Field(
        default=None, description="The environment's ingress, for invoking services (needs the API token)."
    )
    tunnel_name: str | None = Field(
        default=None, description="The tunnel's name in Restate Cloud (this resource's uid), in every tunnelled URL."
    )


class RestateCloudEnvironment(Model):
    """A Restate Cloud environment, reached through a tunnel the operator runs."""

    api_version: str = "restate.dev/v1beta1"
    kind: str = "RestateCloudEnvironment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RestateCloudEnvironmentSpec
    status: RestateCloudEnvironmentStatus | None = None
