"""What each operator process may do to which kind: the one source of the operator's RBAC.

The Kubernetes client refuses any call this table does not declare (`Kube(grants=...)`), so a new
client call that needs a new verb fails loudly in the tests instead of as a 403 in a user's cluster;
`python -m services.rbacgen` renders the Helm chart's ClusterRole and Role rules from it, and a test
fails when the chart is stale. Nothing else in the repository lists verbs.

Server-side apply needs both `patch` and `create` (the apiserver checks `create` when the object
does not exist yet), so `APPLY` is the pair. Secrets and the tunnel Deployments are touched only in
the operator's own namespace and are granted by a Role there, never cluster-wide (as upstream).
"""

from __future__ import annotations

from dataclasses import dataclass

from services import kinds

GET, LIST, WATCH, CREATE, PATCH, UPDATE, DELETE = "get", "list", "watch", "create", "patch", "update", "delete"
APPLY = frozenset({PATCH, CREATE})
READ = frozenset({GET})
OBSERVE = frozenset({LIST, WATCH})


@dataclass(frozen=True)
class Grant:
    """The verbs one process needs on one kind (or one `Kind/subresource`)."""

    verbs: frozenset[str]
    operator_namespace: bool = False
    """Only in the operator's own namespace: a Role in the release namespace, not a ClusterRole rule."""

    chart_flag: str | None = None
    """The chart value that turns this integration on; the rule is rendered only when it is set."""


def _grant(*verbs: frozenset[str] | str, operator_namespace: bool = False, chart_flag: str | None = None) -> Grant:
    flat = frozenset(v for item in verbs for v in ((item,) if isinstance(item, str) else item))
    return Grant(flat, operator_namespace=operator_namespace, chart_flag=chart_flag)


# The services process: every reconciler's reads and writes.
SERVICES: dict[str, Grant] = {
    **{kind.kind: _grant(GET, APPLY) for kind in kinds.CUSTOM},  # read, finalizer
    **{f"{kind.kind}/status": _grant(PATCH) for kind in kinds.CUSTOM},
    # Children carry blockOwnerDeletion; where OwnerReferencesPermissionEnforcement is on (OpenShift),
    # setting it needs update on the owner's finalizers. No client call uses it directly.
    **{f"{kind.kind}/finalizers": _grant(UPDATE) for kind in kinds.CUSTOM},
    "Namespace": _grant(GET, APPLY),
    "Service": _grant(GET, APPLY, DELETE),  # get: the stable Service is written only when absent or ours
    "ServiceAccount": _grant(APPLY),
    "ConfigMap": _grant(APPLY),
    "Pod": _grant(GET),  # auto-provisioning waits for restate-0 to run
    "PersistentVolumeClaim": _grant(LIST, APPLY),  # online volume expansion
    "ReplicaSet": _grant(GET, LIST, APPLY, DELETE),  # get: a foreign ReplicaSet holding a version's name
    "StatefulSet": _grant(GET, APPLY, DELETE),  # delete: orphan-re-create for a new claim size
    "Job": _grant(APPLY, DELETE),
    "PodDisruptionBudget": _grant(APPLY),
    "NetworkPolicy": _grant(APPLY, DELETE),
    "HorizontalPodAutoscaler": _grant(APPLY, DELETE),
    "EndpointSlice": _grant(LIST),  # a version registers once its endpoints are ready
    "Event": _grant(CREATE),
    "SecretProviderClass": _grant(APPLY, DELETE),
    "SecurityGroupPolicy": _grant(APPLY, DELETE),
    "PodIdentityAssociation": _grant(GET, APPLY, DELETE, chart_flag="awsPodIdentityAssociationCluster"),
    "IAMPolicyMember": _grant(GET, APPLY, DELETE, chart_flag="gcpWorkloadIdentity"),
    # Knative mode (its CRDs may be absent): a Configuration and a Route per tag, the latest Revision read.
    "Configuration": _grant(GET, LIST, APPLY, DELETE),
    "Route": _grant(GET, APPLY),  # get: an abort or rollback serves a tag as it is
    "Revision": _grant(GET),
    # Only in the operator's namespace: Restate Cloud token Secrets (key names are checked), tunnel clients.
    "Secret": _grant(GET, operator_namespace=True),
    "Deployment": _grant(APPLY, DELETE, operator_namespace=True),
}

# The watcher: list and watch our kinds and the children it maps back to them; it writes nothing.
WATCHER: dict[str, Grant] = {
    kind: _grant(OBSERVE)
    for kind in (
        *(k.kind for k in kinds.CUSTOM),
        *kinds.CHILD_KINDS,
        *kinds.OPTIONAL_CHILD_KINDS,
        *kinds.LABELLED_KINDS,
        *kinds.KNATIVE_KINDS,
    )
}
# Restate Cloud token Secrets, as metadata only: a created or rotated one reconciles its users.
WATCHER["Secret"] = _grant(OBSERVE, operator_namespace=True)
