"""Pieces shared by every custom resource model: naming, conditions, embedded Kubernetes types.

Embedded Kubernetes types (Affinity, Container, ...) are plain dicts in Python, passed through to
the objects we build untouched; their CRD schema is the real one from the kube-apiserver's OpenAPI
document (`kube_openapi.json`), inlined by `crdgen` wherever a field is marked with `kube()`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "restate.dev"
KUBE_REF = "x-kube-ref"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are the apiserver's job to prune."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def kube(definition: str, *, list_of: bool = False, map_of: bool = False) -> Any:
    """Mark a field as an embedded Kubernetes type, e.g. `kube("io.k8s.api.core.v1.Affinity")`."""
    schema: dict[str, Any] = {KUBE_REF: definition}
    if list_of:
        schema = {"type": "array", "items": schema}
    if map_of:
        schema = {"type": "object", "additionalProperties": schema}
    return WithJsonSchema(schema)


KubeObject = dict[str, Any]
Affinity = Annotated[KubeObject, kube("io.k8s.api.core.v1.Affinity")]
Container = Annotated[KubeObject, kube("io.k8s.api.core.v1.Container")]
EnvVar = Annotated[KubeObject, kube("io.k8s.api.core.v1.EnvVar")]
Lifecycle = Annotated[KubeObject, kube("io.k8s.api.core.v1.Lifecycle")]
LocalObjectReference = Annotated[KubeObject, kube("io.k8s.api.core.v1.LocalObjectReference")]
PodDNSConfig = Annotated[KubeObject, kube("io.k8s.api.core.v1.PodDNSConfig")]
ResourceRequirements = Annotated[KubeObject, kube("io.k8s.api.core.v1.ResourceRequirements")]
Toleration = Annotated[KubeObject, kube("io.k8s.api.core.v1.Toleration")]
TopologySpreadConstraint = Annotated[KubeObject, kube("io.k8s.api.core.v1.TopologySpreadConstraint")]
Volume = Annotated[KubeObject, kube("io.k8s.api.core.v1.Volume")]
VolumeMount = Annotated[KubeObject, kube("io.k8s.api.core.v1.VolumeMount")]
LabelSelector = Annotated[KubeObject, kube("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")]
NetworkPolicyPeer = Annotated[KubeObject, kube("io.k8s.api.networking.v1.NetworkPolicyPeer")]
NetworkPolicyPort = Annotated[KubeObject, kube("io.k8s.api.networking.v1.NetworkPolicyPort")]
PodSpec = Annotated[KubeObject, kube("io.k8s.api.core.v1.PodSpec")]
FreeForm = Annotated[KubeObject, WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})]

StringMap = dict[str, str]


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """CEL validation rules for `json_schema_extra`: (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in pairs]}


class Condition(Model):
    """A status condition, as in `metav1.Condition`."""

    type: str = Field(description="Type of condition: Ready, Progressing or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str | None = Field(default=None, description="One CamelCase word saying why the condition is so.")
    message: str | None = Field(default=None, description="Human-readable details.")
    last_transition_time: str | None = Field(default=None, description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed for."
    )


class SecretKeyRef(Model):
    """One key of a Secret."""

    secret_name: str = Field(description="Name of the Secret.", min_length=1)
    key: str = Field(description="Key within the Secret.", min_length=1)
