"""The one registry of API kinds: our three custom kinds, derived from their models, and the rest we touch.

Everything that needs a fact about a kind reads it here: the CRD generator (names, scope, printer
columns), the Kubernetes client (resource paths), the reconcilers (finalizer, controller name,
Restate service name), the metrics (controller labels), the watcher (what to watch) and the RBAC
table. A custom kind's group and version come from its model's `api_version`, its name from the
model class.

Adding a kind: its model in `services/models/`, one `CustomKind` entry below, a builder and a
reconciler (listed in `services/app.py`). Nothing else names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from services import contract
from services.models import cloud, cluster, deployment
from services.models.common import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the Kubernetes API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


@dataclass(frozen=True)
class CustomKind:
    """One of our custom resources: its model and what only a CRD and its reconciler add."""

    model: type[BaseModel]
    plural: str
    short_name: str
    namespaced: bool
    finalizer: str
    """Upstream's finalizer name, so a swap of operators keeps resources deletable."""

    name_pattern: str
    name_max_length: int
    printer_columns: list[dict[str, Any]]
    scale: bool = False
    """Serve the scale subresource (`kubectl scale`, autoscalers)."""

    spec_rules: dict[str, Any] = field(default_factory=dict)
    """Extra schema keys on `spec` (CEL rules that span fields)."""

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def api_version(self) -> str:
        return str(self.model.model_fields["api_version"].default)

    @property
    def group(self) -> str:
        return self.api_version.partition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.partition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def controller(self) -> str:
        """The `controller` label of the reconcile metrics (controller-runtime's convention)."""
        return self.kind.lower()

    @property
    def service_name(self) -> str:
        return contract.service_name(self.kind)

    @property
    def resource(self) -> Resource:
        return Resource(self.group, self.version, self.plural, self.kind, self.namespaced)

    def spec_model(self) -> type[BaseModel]:
        return _field_model(self.model, "spec")

    def status_model(self) -> type[BaseModel]:
        return _field_model(self.model, "status")


def _field_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    annotation = model.model_fields[name].annotation
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    return next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))


def _ready_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {
            "name": "Status",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
        },
    ]


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

CLUSTER = CustomKind(
    model=cluster.RestateCluster,
    plural="restateclusters",
    short_name="rsc",
    namespaced=False,
    finalizer="clusters.restate.dev",
    # The cluster's namespace takes the resource's name, so it must be a DNS label.
    name_pattern=DNS_LABEL_PATTERN,
    name_max_length=63,
    printer_columns=[
        *_ready_columns(),
        {"name": "Replicas", "type": "integer", "priority": 1, "jsonPath": ".status.readyReplicas"},
        {"name": "Provisioned", "type": "boolean", "priority": 1, "jsonPath": ".status.provisioned"},
        AGE,
    ],
)
DEPLOYMENT = CustomKind(
    model=deployment.RestateDeployment,
    plural="restatedeployments",
    short_name="rsd",
    namespaced=True,
    finalizer="deployments.restate.dev",
    name_pattern=deployment.NAME_PATTERN,
    name_max_length=deployment.MAX_NAME_LENGTH,
    printer_columns=[
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Up-To-Date", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas"},
        AGE,
        # After upstream's columns, so scripts that read them by position keep working after a swap.
        {"name": "Latest", "type": "string", "jsonPath": ".status.latestVersion"},
        {"name": "Draining", "type": "integer", "jsonPath": ".status.drainingVersions"},
        {"name": "Invocations", "type": "integer", "jsonPath": ".status.drainingInvocations"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".status.paused"},
        {"name": "Deployment ID", "type": "string", "priority": 1, "jsonPath": ".status.deploymentId"},
        {"name": "Containers", "type": "string", "priority": 1, "jsonPath": ".spec.template.spec.containers[*].name"},
        {"name": "Images", "type": "string", "priority": 1, "jsonPath": ".spec.template.spec.containers[*].image"},
        {"name": "Selector", "type": "string", "priority": 1, "jsonPath": ".status.labelSelector"},
        {
            "name": "Status",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
    ],
    scale=True,
    spec_rules=deployment.SPEC_RULES,
)
CLOUD_ENVIRONMENT = CustomKind(
    model=cloud.RestateCloudEnvironment,
    plural="restatecloudenvironments",
    short_name="rce",
    namespaced=False,
    finalizer="cloudenvironments.restate.dev",
    name_pattern=DNS_SUBDOMAIN_PATTERN,
    name_max_length=cloud.MAX_NAME_LENGTH,
    printer_columns=[
        *_ready_columns(),
        {"name": "Environment", "type": "string", "jsonPath": ".spec.environmentId"},
        {"name": "Region", "type": "string", "jsonPath": ".spec.region"},
        AGE,
    ],
)
CUSTOM: tuple[CustomKind, ...] = (CLUSTER, DEPLOYMENT, CLOUD_ENVIRONMENT)
BY_KIND: dict[str, CustomKind] = {k.kind: k for k in CUSTOM}

# Children the reconcilers write; the watcher maps their changes back to the owning resource.
CHILD_KINDS = (
    "Deployment",
    "Service",
    "ReplicaSet",
    "StatefulSet",
    "ConfigMap",
    "HorizontalPodAutoscaler",
    "Job",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Namespace",
)
# Third-party children: their CRDs may be absent, so watching them never holds back readiness.
OPTIONAL_CHILD_KINDS = ("SecretProviderClass", "SecurityGroupPolicy", "PodIdentityAssociation", "IAMPolicyMember")
# What the reconcilers wait on that carries no ownerReference of ours: the watcher maps them by label.
LABELLED_KINDS = ("Pod", "PersistentVolumeClaim", "EndpointSlice")
# Knative mode's objects (their CRDs may be absent): mapped by their `restate.dev/deployment` annotation,
# since Routes and Revisions are owned by a Configuration, not by the RestateDeployment.
KNATIVE_KINDS = ("Configuration", "Route", "Revision")

_BUILTIN = (
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "services", "Service", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True),
    Resource("", "v1", "configmaps", "ConfigMap", True),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    Resource("apps", "v1", "deployments", "Deployment", True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True),
    Resource("batch", "v1", "jobs", "Job", True),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    Resource("events.k8s.io", "v1", "events", "Event", True),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("secrets-store.csi.x-k8s.io", "v1", "secretproviderclasses", "SecretProviderClass", True),
    Resource("eks.services.k8s.aws", "v1alpha1", "podidentityassociations", "PodIdentityAssociation", True),
    Resource("vpcresources.k8s.aws", "v1beta1", "securitygrouppolicies", "SecurityGroupPolicy", True),
    Resource("iam.cnrm.cloud.google.com", "v1beta1", "iampolicymembers", "IAMPolicyMember", True),
    Resource("serving.knative.dev", "v1", "configurations", "Configuration", True),
    Resource("serving.knative.dev", "v1", "routes", "Route", True),
    Resource("serving.knative.dev", "v1", "revisions", "Revision", True),
)
RESOURCES: dict[str, Resource] = {r.kind: r for r in (*_BUILTIN, *(k.resource for k in CUSTOM))}
