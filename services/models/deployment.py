"""`RestateDeployment` (restate.dev/v1beta1, namespaced): versioned Restate SDK services.

Every change of the pod template makes a new version (a ReplicaSet and a Service of its own),
registered with Restate; old versions drain before they are scaled down and deregistered.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from services.models.common import (
    DNS_LABEL_PATTERN,
    Condition,
    FreeForm,
    LabelSelector,
    Model,
    PodSpec,
    StringMap,
    rules,
)

# `<name>-<hash>` names a Service, a DNS label of at most 63 characters; the hash takes up to 10.
MAX_NAME_LENGTH = 52
# ...and a Service name is a DNS-1035 label: it starts with a letter. A name like `1greeter` passed a
# DNS-1123 check, got its ReplicaSet, and then failed on its Service: half applied.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class PodTemplateMetadata(Model):
    labels: StringMap | None = Field(default=None, description="Labels of every version's pods.")
    annotations: StringMap | None = Field(default=None, description="Annotations of every version's pods.")


class PodTemplate(Model):
    metadata: PodTemplateMetadata | None = Field(default=None, description="Labels and annotations of the pods.")
    spec: PodSpec = Field(
        description=(
            "The pod spec of the SDK service. Known fields are validated as a Kubernetes PodSpec; unknown "
            "ones (Knative's timeoutSeconds, containerConcurrency, ...) are kept."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class ServiceTarget(Model):
    name: str = Field(min_length=1, description="Name of the Service exposing Restate's admin API.")
    namespace: str = Field(min_length=1, description="Namespace of that Service.")
    path: str | None = Field(default=None, description="Path prefix of the admin API, kept on every admin call.")
    port: int = Field(default=9070, ge=1, le=65535, description="Admin API port of the Service.")


class Register(Model):
    """Where the Restate admin API lives; exactly one field must be set."""

    cluster: str | None = Field(
        default=None, min_length=1, description="Name of a RestateCluster managed by this operator."
    )
    cloud: str | None = Field(default=None, min_length=1, description="Name of a RestateCloudEnvironment.")
    service: ServiceTarget | None = Field(default=None, description="An in-cluster Service exposing the admin API.")
    url: str | None = Field(
        default=None,
        description="The admin API's URL, e.g. http://restate.restate.svc:9070; a path prefix is kept.",
        json_schema_extra=rules(
            (
                "isURL(self) && self.matches('^https?://') && url(self).getHostname() != ''",
                "url must be an http(s) URL with a host, e.g. http://restate.restate.svc:9070",
            )
        ),
    )


EXACTLY_ONE_TARGET = (
    "[has(self.cluster), has(self.cloud), has(self.service), has(self.url)].filter(x, x).size() == 1",
    "exactly one of cluster, cloud, service and url must be set",
)


class TunnelMode(StrEnum):
    EXTERNAL = "external"
    IN_PROCESS = "in-process"


class RestateOptions(Model):
    # `register` would shadow ABCMeta.register on the model class, hence the alias.
    register_to: Register = Field(
        alias="register",
        description="The Restate to register every version with.",
        json_schema_extra=rules(EXACTLY_ONE_TARGET),
    )
    service_path: str | None = Field(
        default=None,
        pattern="^/",
        description="Path of the SDK endpoint inside each version's Service URL, e.g. /restate.",
    )
    use_http11: bool | None = Field(
        default=None,
        alias="useHttp11",
        description="Register with use_http_11 (request/response mode) for servers without HTTP/2.",
    )
    tunnel_mode: TunnelMode | None = Field(
        default=None,
        description="With register.cloud: external (a tunnel Deployment) or in-process (the SDK's own tunnel).",
    )
    drain_delay_seconds: int = Field(
        default=300,
        ge=0,
        description="Seconds to keep a drained version running before it is scaled down and deregistered.",
    )
    registration_policy: Literal["Auto", "Held"] = Field(
        default="Auto",
        description=(
            "Auto registers each new version as soon as it is ready; Held keeps a ready version unregistered "
            "until the DeploymentReconciler's promote handler is called (e.g. by a CD gate)."
        ),
    )


class KnativeOptions(Model):
    tag: str | None = Field(
        default=None,
        pattern=DNS_LABEL_PATTERN.replace("[a-z0-9]([", "[a-z]([", 1),
        max_length=20,
        description="Version identity in Knative mode; keeping a tag updates that version in place.",
    )
    min_scale: int | None = Field(default=None, ge=0, description="autoscaling.knative.dev/min-scale (default 0).")
    max_scale: int | None = Field(default=None, ge=0, description="autoscaling.knative.dev/max-scale.")
    target: int | None = Field(default=None, ge=0, description="autoscaling.knative.dev/target.")


SCALE_ORDER = (
    "!has(self.minScale) || !has(self.maxScale) || self.maxScale == 0 || self.minScale <= self.maxScale",
    "minScale must not exceed maxScale",
)


class RestateDeploymentSpec(Model):
    deployment_mode: Literal["replicaset", "knative"] = Field(
        default="replicaset",
        description="replicaset (a ReplicaSet per version) or knative (a Knative Configuration per version).",
        json_schema_extra=rules(("self == oldSelf", "deploymentMode is immutable after creation")),
    )
    replicas: int = Field(default=1, ge=0, description="Pods of the latest version (replicaset mode).")
    revision_history_limit: int = Field(
        default=10, ge=0, description="Drained old versions kept at zero replicas before they are deleted."
    )
    min_ready_seconds: int | None = Field(
        default=None, ge=0, description="Seconds a new pod must be ready before it counts as available."
    )
    selector: LabelSelector | None = Field(
        default=None,
        description="Selects the pods; must match the template's labels.",
        json_schema_extra={"x-kubernetes-map-type": "atomic"},
    )
    template: PodTemplate = Field(description="The pods of every version.")
    restate: RestateOptions = Field(description="How versions are registered with Restate.")
    knative: KnativeOptions | None = Field(
        default=None, description="Knative mode options.", json_schema_extra=rules(SCALE_ORDER)
    )
    autoscaling: FreeForm | None = Field(
        default=None,
        description=(
            "A HorizontalPodAutoscaler spec (without scaleTargetRef) applied to each draining version, so old "
            "versions scale with their remaining load (replicaset mode)."
        ),
    )


SPEC_RULES = rules(
    (
        "!has(self.autoscaling) || self.deploymentMode != 'knative'",
        "spec.autoscaling is only supported in replicaset mode (not knative)",
    ),
    (
        "self.deploymentMode != 'knative' || !has(self.restate.tunnelMode) || self.restate.tunnelMode != 'in-process'",
        "tunnelMode in-process is not supported in knative mode",
    ),
    (
        "!has(self.restate.tunnelMode) || has(self.restate.register.cloud)",
        "tunnelMode only applies with register.cloud",
    ),
)


class VersionPhase(StrEnum):
    """The life of one version, in order (`services/reconcilers/phases.py` draws the transitions).

    A version is registered within one pass (it is Latest once Restate accepted it, else the pass
    failed and the conditions say why), and a Drained version past revisionHistoryLimit leaves the
    list, so neither has a phase of its own. A rollback brings a version back to Latest."""

    PENDING = "Pending"
    HELD = "Held"
    LATEST = "Latest"
    DRAINING = "Draining"
    DRAINED = "Drained"


class VersionStatus(Model):
    name: str = Field(description="Name of the version's ReplicaSet and Service.")
    tag: str | None = Field(default=None, description="Explicit tag (knative mode).")
    hash: str | None = Field(default=None, description="Pod template hash.")
    deployment_id: str | None = Field(default=None, description="Restate deployment id, once registered.")
    phase: VersionPhase = Field(description="Pending, Held, Latest, Draining or Drained.")
    replicas: int = Field(default=0, description="Pods of this version.")
    ready_replicas: int = Field(default=0, description="Ready pods of this version.")
    registered_at: str | None = Field(default=None, description="When Restate accepted it (RFC 3339).")
    draining_since: str | None = Field(default=None, description="When it stopped being the latest (RFC 3339).")
    active_invocations: int | None = Field(
        default=None,
        description=(
            "Unfinished invocations pinned to it, or queued for services it is the latest for; absent when unknown."
        ),
    )


class KnativeStatus(Model):
    configuration_name: str | None = None
    route_name: str | None = None
    url: str | None = None
    latest_revision: str | None = None


class RestateDeploymentStatus(Model):
    replicas: int = Field(default=0, description="Pods of the latest version.")
    desired_replicas: int | None = Field(default=None, description="Pods the latest version should have.")
    ready_replicas: int | None = Field(default=None, description="Ready pods of the latest version.")
    available_replicas: int | None = Field(default=None, description="Available pods of the latest version.")
    unavailable_replicas: int | None = Field(default=None, description="desired - available, at least 0.")
    deployment_id: str | None = Field(default=None, description="Restate deployment id of the latest version.")
    collision_count: int | None = Field(default=None, description="Template hash collisions so far.")
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Progressing and Degraded, each with the generation it was computed for.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    label_selector: str | None = Field(default=None, description="Selector of the latest version's pods.")
    paused: bool | None = Field(default=None, description="The rollout is paused (pause/resume handlers).")
    latest_version: str | None = Field(default=None, description="The version Restate routes new invocations to.")
    draining_versions: int | None = Field(default=None, description="Superseded versions Restate still has work for.")
    draining_invocations: int | None = Field(
        default=None, description="Unfinished invocations that still need the draining versions."
    )
    pinned_version: str | None = Field(
        default=None,
        description="Served instead of the spec's version after an abort or rollback, until the spec changes.",
    )
    versions: list[VersionStatus] | None = Field(default=None, description="Every version, newest first.")
    knative: KnativeStatus | None = Field(default=None, description="Knative objects of the latest version.")


class RestateDeployment(Model):
    """A Restate SDK service whose versions are rolled out, registered and drained safely."""

    api_version: str = "restate.dev/v1beta1"
    kind: str = "RestateDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RestateDeploymentSpec
    status: RestateDeploymentStatus | None = None
