"""RestateCluster: a namespace of its own with the Restate nodes, their config, Services and policies.

One pass: validate the spec (pure; a bad spec is Degraded with the reason, nothing applied) →
namespace (a pre-existing one we do not own is used as is, never changed or deleted) → network
policies → ServiceAccount, ConfigMap, Services, PodDisruptionBudget → signing-key provider class and
cloud identities → volume expansion → StatefulSet → readiness. Scale-downs are not applied silently:
Restate nodes must be decommissioned first, so the operator keeps the current size and says so until
`restate.dev/allow-scale-down: "true"`. With `cluster.autoProvision`, once pod restate-0 runs, the
operator provisions the cluster through the node gRPC API, after checking that the nodes will not
provision themselves (split brain). AWS Pod Identity, security groups and GCP Workload Identity are
applied when enabled (operator setting and spec), each checked by a canary Job before the nodes start.

Guarantees: a failed child stops only what depends on it (`Findings`): the StatefulSet is left as it
is while an object its pods need failed, everything else is applied, and the first failure is raised
once the pass is done. A third-party kind whose CRD is not served is skipped, as upstream does, and
named in the `MissingCRDs` condition with what to install.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from services import errors, kinds
from services.builders.cluster import compute, identity, network_policies, quantity
from services.builders.cluster.common import (
    ALLOW_SCALE_DOWN,
    LEGACY_TEMPLATE_ANNOTATIONS,
    config_hash,
    mandatory_labels,
    namespace_of,
)
from services.clients import node_ctl
from services.clients.kube import Obj
from services.kinds import RESOURCES
from services.models import cluster as models
from services.reconcilers.engine import Outcome, Reconciler
from services.reconcilers.steps import Steps

STORAGE_MANAGER = "restate-operator/storage"
NOT_READY_RECHECK_SECONDS = 60.0
IDENTITY_RECHECK_SECONDS = 10.0
MISSING_CRDS = "MissingCRDs"
# Third-party kinds: what to install for each, and what the nodes run without while its CRD is not served.
THIRD_PARTY: dict[str, tuple[str, str]] = {
    "SecretProviderClass": ("the Secrets Store CSI driver", "the signing key (spec.security.requestSigningPrivateKey)"),
    "SecurityGroupPolicy": ("the AWS VPC resource controller", "spec.security.awsPodSecurityGroups"),
    "PodIdentityAssociation": ("the AWS ACK EKS controller", "spec.security.awsPodIdentityAssociationRoleArn"),
    "IAMPolicyMember": ("Config Connector", "GCP Workload Identity (iam.gke.io/gcp-service-account)"),
}


def validate(rsc: Obj, steps: Steps) -> None:
    """Raise `InvalidSpec` for specs no StatefulSet could run (the builder says which names collide)."""
    try:
        tomllib.loads(rsc["spec"].get("config") or "")
        compute.statefulset(rsc, steps.settings, replicas=1)
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidSpec(f"spec.config: the Restate config is not valid TOML: {exc}") from exc


def self_provisioning_disabled(rsc: Obj) -> bool:
    """Auto-provisioning by the operator is only safe when the nodes will not provision themselves."""
    for entry in rsc["spec"]["compute"].get("env") or []:
        if entry["name"] == "RESTATE_AUTO_PROVISION" and "value" in entry:
            return str(entry["value"]).lower() == "false"
    config = tomllib.loads(rsc["spec"].get("config") or "")
    return config.get("auto-provision") is False


@dataclass
class Findings:
    """What one pass met without stopping: third-party CRDs not served, and children that failed.

    `pods_blocked`: a failed child is one the pods need (ServiceAccount, ConfigMap, signing-key
    provider class, security groups, a cloud identity). The StatefulSet is then left as it is: new
    pods would start without it, and on a passing error the template would change twice."""

    missing_crds: set[str] = field(default_factory=set)
    failures: list[errors.OperatorError] = field(default_factory=list)
    pods_blocked: bool = False

    def conditions(self) -> list[dict[str, Any]]:
        if not self.missing_crds:
            return []
        kinds = sorted(self.missing_crds)
        parts = []
        for kind in kinds:
            installs, without = THIRD_PARTY[kind]
            crd = f"{RESOURCES[kind].plural}.{RESOURCES[kind].group}"
            parts.append(
                f"{kind} ({crd}) is not installed: install {installs}; until then the nodes run without {without}"
            )
        reason = f"{kinds[0]}CRDNotFound" if len(kinds) == 1 else "CRDsNotFound"
        return [{"type": MISSING_CRDS, "status": "True", "reason": reason, "message": "; ".join(parts)}]


async def apply_child(steps: Steps, obj: Obj, found: Findings, *, pods_need: bool) -> Obj | None:
    """Apply one child; None when it failed (recorded in `found`) or its third-party CRD is not served."""
    try:
        return await steps.apply(obj)
    except errors.OperatorError as failure:
        if isinstance(failure, errors.NotFound) and obj["kind"] in THIRD_PARTY:
            found.missing_crds.add(obj["kind"])
        else:
            found.failures.append(failure)
            found.pods_blocked |= pods_need
        return None


# --- journaled actions ---


async def pod_phase(steps: Steps, namespace: str, name: str) -> str | None:
    pod = await (await steps.kube()).get(RESOURCES["Pod"], name, namespace)
    return None if pod is None else str((pod.get("status") or {}).get("phase"))


async def namespace_owner(steps: Steps, name: str) -> dict[str, Any]:
    """{exists, owners}: the uids of the namespace's controllers, to tell ours from a pre-existing one."""
    found = await (await steps.kube()).get(RESOURCES["Namespace"], name)
    if found is None:
        return {"exists": False, "owners": []}
    return {"exists": True, "owners": [r.get("uid") for r in found["metadata"].get("ownerReferences") or []]}


async def delete_policies(steps: Steps, namespace: str, names: list[str]) -> int:
    kube = await steps.kube()
    return sum([await kube.delete(RESOURCES["NetworkPolicy"], name, namespace) for name in names])


async def current_statefulset(steps: Steps, namespace: str) -> dict[str, Any] | None:
    sts = await (await steps.kube()).get(RESOURCES["StatefulSet"], "restate", namespace)
    if sts is None:
        return None
    claim = (sts["spec"].get("volumeClaimTemplates") or [{}])[0].get("spec") or {}
    status = sts.get("status") or {}
    template_annotations = (sts["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    return {
        "uid": sts["metadata"]["uid"],
        "replicas": sts["spec"].get("replicas", 1),
        "storage": (claim.get("resources") or {}).get("requests", {}).get("storage"),
        "vac": claim.get("volumeAttributesClassName"),
        "legacy": {k: v for k, v in template_annotations.items() if k in LEGACY_TEMPLATE_ANNOTATIONS},
        "status_replicas": status.get("replicas", 0),
        "ready": status.get("readyReplicas", 0),
        "updated": status.get("updatedReplicas", 0),
        "observed": status.get("observedGeneration", 0) >= sts["metadata"].get("generation", 0),
    }


async def expand_volumes(steps: Steps, rsc: Obj) -> list[str]:
    """Grow every node's claim to the requested size; returns the claims not bound yet."""
    kube, namespace, storage = await steps.kube(), namespace_of(rsc), rsc["spec"]["storage"]
    selector = ",".join(f"{k}={v}" for k, v in mandatory_labels(rsc).items())
    claims = await kube.list(RESOURCES["PersistentVolumeClaim"], namespace, label_selector=selector)
    unbound = []
    for claim in claims["items"]:
        spec: Obj = {"resources": {"requests": {"storage": str(storage["storageRequestBytes"])}}}
        if storage.get("volumeAttributesClassName"):
            spec["volumeAttributesClassName"] = storage["volumeAttributesClassName"]
        patch = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim["metadata"]["name"], "namespace": namespace},
            "spec": spec,
        }
        await kube.apply(patch, field_manager=STORAGE_MANAGER)
        if (claim.get("status") or {}).get("phase") != "Bound":
            unbound.append(claim["metadata"]["name"])
    return unbound


async def orphan_statefulset(steps: Steps, namespace: str) -> None:
    """Delete the StatefulSet but keep its pods: its claim template can only change by re-creation."""
    await (await steps.kube()).delete(RESOURCES["StatefulSet"], "restate", namespace, propagation="Orphan")


def claim_template_changed(current: dict[str, Any], storage: Obj) -> bool:
    """Sizes are compared by value: the apiserver stores 10000000000 as 10G."""
    size_changed = not quantity.same(current["storage"], storage["storageRequestBytes"])
    return size_changed or current["vac"] != storage.get("volumeAttributesClassName")


# --- the pass ---


async def converge(steps: Steps, rsc: Obj) -> Outcome:
    settings, spec, name = steps.settings, rsc["spec"], rsc["metadata"]["name"]
    namespace = namespace_of(rsc)
    validate(rsc, steps)
    found = Findings()

    owner = await steps.run(f"get Namespace {namespace}", namespace_owner, steps, namespace)
    if not owner["exists"] or rsc["metadata"]["uid"] in owner["owners"]:
        await steps.apply(compute.namespace(rsc))

    security = spec.get("security") or {}
    if security.get("disableNetworkPolicies"):
        names = [*network_policies.NAMES, *network_policies.LEGACY_NAMES, identity.PIA_EGRESS_POLICY]
        await steps.run("delete NetworkPolicies", delete_policies, steps, namespace, names)
    else:
        for policy in network_policies.network_policies(rsc, settings):
            await apply_child(steps, policy, found, pods_need=False)
        await steps.run(
            "delete legacy NetworkPolicies", delete_policies, steps, namespace, list(network_policies.LEGACY_NAMES)
        )

    for child in (compute.service_account(rsc), compute.config_map(rsc)):
        await apply_child(steps, child, found, pods_need=True)
    for child in (compute.service(rsc), compute.headless_service(rsc), compute.pod_disruption_budget(rsc)):
        await apply_child(steps, child, found, pods_need=False)

    # The signing-key Secret is not read: the operator may read Secrets only in its own namespace.
    # A missing one keeps the pods from starting, which the not-ready message below points at.
    if provider_class := compute.secret_provider_class(rsc):
        await apply_child(steps, provider_class, found, pods_need=True)
    else:
        stale = [("SecretProviderClass", compute.SIGNING_PROVIDER_CLASS)]
        await steps.run("delete SecretProviderClass", delete_objects, steps, namespace, stale)

    identity_wait = await _identities(steps, rsc, found)
    extra = found.conditions()
    if found.pods_blocked:
        raise found.failures[0]
    if identity_wait:
        # Pods created before their identity works would start without credentials: wait first.
        reason, message = identity_wait
        if found.failures:
            raise found.failures[0]
        kept = {**_previous_counts(rsc), "configHash": config_hash(spec.get("config") or "")}
        return Outcome(
            ready=False,
            reason=reason,
            message=message,
            requeue_after=IDENTITY_RECHECK_SECONDS,
            status=kept,
            conditions=extra,
        )

    current = await steps.run("get StatefulSet restate", current_statefulset, steps, namespace)
    unbound = await steps.run("expand volumes", expand_volumes, steps, rsc)
    if current and claim_template_changed(current, spec["storage"]):
        # The re-created one keeps the size and template the pods run with (no scale-down, no roll).
        await steps.run("re-create StatefulSet for its claim template", orphan_statefulset, steps, namespace)

    wanted = models.Compute.model_validate(spec["compute"]).replicas
    replicas, scale_down_blocked = wanted, False
    allowed = (rsc["metadata"].get("annotations") or {}).get(ALLOW_SCALE_DOWN) == "true"
    if current and wanted < current["replicas"] and not allowed:
        replicas, scale_down_blocked = current["replicas"], True
    legacy = current["legacy"] if current else {}
    desired = compute.statefulset(
        rsc, settings, replicas=replicas, missing_crds=frozenset(found.missing_crds), legacy_annotations=legacy
    )
    applied = await steps.apply(desired)
    if found.failures:
        raise found.failures[0]

    status: dict[str, Any] = {
        "replicas": (applied.get("status") or {}).get("replicas", 0),
        "readyReplicas": (applied.get("status") or {}).get("readyReplicas", 0),
        "configHash": config_hash(spec.get("config") or ""),
    }
    previous = _previous_counts(rsc)
    if previous.get("provisioned"):
        status["provisioned"] = True
        if "provisionedConfiguration" in previous:
            status["provisionedConfiguration"] = previous["provisionedConfiguration"]
    elif (spec.get("cluster") or {}).get("autoProvision"):
        waiting, provisioned = await _provision(steps, rsc, namespace)
        if waiting:
            return Outcome(
                ready=False,
                reason="ProvisioningPodNotRunning",
                message=waiting,
                requeue_after=5.0,
                status=status,
                conditions=extra,
            )
        status["provisioned"] = True
        if provisioned:
            status["provisionedConfiguration"] = provisioned
    drift = drift_condition({**rsc, "status": status})
    if drift:
        extra.append(drift)
    if scale_down_blocked:
        return Outcome(
            ready=False,
            reason="ScaleDownBlocked",
            message=(
                f"spec.compute.replicas is {wanted} but {replicas} nodes run: removing Restate nodes needs them "
                f"decommissioned first (restatectl). Then annotate: kubectl annotate rsc {name} {ALLOW_SCALE_DOWN}=true"
            ),
            status=status,
            conditions=extra,
        )
    if unbound:
        return Outcome(
            ready=False,
            reason="PersistentVolumeClaimNotBound",
            message=f"PersistentVolumeClaim {unbound[0]} is not yet bound to a volume",
            requeue_after=NOT_READY_RECHECK_SECONDS,
            status=status,
            conditions=extra,
        )
    not_ready = statefulset_not_ready(applied.get("status") or {}, replicas)
    if not_ready:
        reason, message = not_ready
        return Outcome(
            ready=False,
            reason=reason,
            message=message + _mount_hint(rsc),
            requeue_after=NOT_READY_RECHECK_SECONDS,
            status=status,
            conditions=extra,
        )
    return Outcome(
        ready=True,
        reason="Reconciled",
        message=f"{replicas}/{replicas} Restate nodes ready",
        status=status,
        conditions=extra,
    )


def statefulset_not_ready(sts_status: Obj, replicas: int) -> tuple[str, str] | None:
    """(reason, message) while the nodes are not all ready, with upstream's reasons."""
    if not sts_status:
        return "StatefulSetNoStatus", "StatefulSet has no status set; it may have just been created"
    if sts_status.get("replicas", 0) != replicas:
        return "StatefulSetScaling", (
            f"StatefulSet has {sts_status.get('replicas', 0)} replicas instead of the expected {replicas}; "
            "it may be scaling up or down"
        )
    ready = sts_status.get("readyReplicas", 0)
    if ready < replicas:
        return "StatefulSetPodNotReady", (
            f"StatefulSet has {ready} ready replicas instead of the expected {replicas}; a pod may not be ready"
        )
    return None


async def delete_objects(steps: Steps, namespace: str, objects: list[tuple[str, str]]) -> None:
    """Delete (kind, name) pairs; absent objects, or kinds whose CRD is not installed, are fine."""
    kube = await steps.kube()
    for kind, name in objects:
        await kube.delete(RESOURCES[kind], name, namespace)


def _condition(obj: Obj, type_: str) -> str | None:
    found = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)
    return None if found is None else str(found.get("status"))


async def _canary(
    steps: Steps, rsc: Obj, found: Findings, name: str, command: list[str], prefix: str
) -> tuple[str, str] | None:
    """Run the canary Job; None once it completed, else (reason, message).

    A Job's pod template is immutable, so a changed one (new tolerations, canary image) is refused
    as Invalid: the Job is then deleted and created afresh, as upstream does. Only when the new
    Job is refused too is it a failure."""
    namespace = namespace_of(rsc)
    pending = f"{prefix}CanaryPending", f"waiting for canary Job {name} to check the pods' cloud identity"
    desired = identity.canary_job(rsc, steps.settings, name, command)
    try:
        job: Obj | None = await steps.apply(desired)
    except errors.OperatorError as failure:
        if not isinstance(failure, errors.Invalid):
            found.failures.append(failure)
            found.pods_blocked = True
            return pending
        await steps.run(f"delete Job {name} to re-create it", delete_objects, steps, namespace, [("Job", name)])
        job = await apply_child(steps, desired, found, pods_need=True)
    if job is None:
        return pending
    if _condition(job, "Complete") == "True":
        return None
    if _condition(job, "Failed") == "True":
        await steps.run(f"delete Job {name}", delete_objects, steps, namespace, [("Job", name)])
        return f"{prefix}CanaryFailed", f"canary Job {name} failed: the pods' cloud identity does not work yet"
    return pending


async def _identities(steps: Steps, rsc: Obj, found: Findings) -> tuple[str, str] | None:
    """AWS Pod Identity, security groups and GCP Workload Identity; returns what it waits for, if anything."""
    settings, namespace = steps.settings, namespace_of(rsc)
    network_policies_on = not (rsc["spec"].get("security") or {}).get("disableNetworkPolicies")
    waiting: tuple[str, str] | None = None
    role = identity.pia_role(rsc, settings)
    if role:
        association = identity.pod_identity_association(rsc, settings, role)
        pia = await apply_child(steps, association, found, pods_need=True)
        if network_policies_on:
            await apply_child(steps, identity.pia_egress_policy(rsc), found, pods_need=True)
        if pia is None:
            pass  # not served (skipped) or failed (the pods wait): `found` says which
        elif _condition(pia, "ACK.ResourceSynced") != "True":
            waiting = (
                "PodIdentityAssociationNotSynced",
                "waiting for the AWS ACK controller to sync PodIdentityAssociation restate",
            )
        else:
            waiting = await _canary(
                steps, rsc, found, identity.PIA_CANARY, identity.PIA_COMMAND, "PodIdentityAssociation"
            )
    else:
        stale = [("NetworkPolicy", identity.PIA_EGRESS_POLICY)]
        if settings.aws_pod_identity_association_cluster:
            stale += [("PodIdentityAssociation", "restate"), ("Job", identity.PIA_CANARY)]
        await steps.run("delete Pod Identity objects", delete_objects, steps, namespace, stale)
    if groups := identity.security_groups(rsc):
        await apply_child(steps, identity.security_group_policy(rsc, groups), found, pods_need=True)
    else:
        await steps.run(
            "delete SecurityGroupPolicy", delete_objects, steps, namespace, [("SecurityGroupPolicy", "restate")]
        )
    email = identity.gcp_service_account(rsc, settings)
    if email:
        member = identity.iam_policy_member(rsc, email)
        applied = await apply_child(steps, member, found, pods_need=True)
        if applied is None:
            pass
        elif _condition(applied, "Ready") != "True":
            waiting = waiting or ("IAMPolicyMemberNotReady", "waiting for Config Connector to apply IAMPolicyMember")
        else:
            waiting = waiting or await _canary(
                steps, rsc, found, identity.WI_CANARY, identity.WI_COMMAND, "WorkloadIdentity"
            )
    elif settings.gcp_workload_identity:
        stale = [("IAMPolicyMember", "restate-workload-identity"), ("Job", identity.WI_CANARY)]
        await steps.run("delete Workload Identity objects", delete_objects, steps, namespace, stale)
    return waiting


def _previous_counts(rsc: Obj) -> dict[str, Any]:
    previous = rsc.get("status") or {}
    keep = ("replicas", "readyReplicas", "provisioned", "provisionedConfiguration")
    return {k: previous[k] for k in keep if k in previous}


def config_drift(config: str, provisioned: dict[str, Any]) -> list[str]:
    """What spec.config asks for that the provisioned cluster does not have (fixed at provisioning)."""
    wanted = tomllib.loads(config or "")
    drift = []
    partitions = wanted.get("default-num-partitions")
    if partitions is not None and provisioned.get("numPartitions") not in (None, partitions):
        drift.append(f"default-num-partitions is {partitions} but the cluster has {provisioned['numPartitions']}")
    replication = wanted.get("default-replication")
    live = re.findall(r"\d+", str(provisioned.get("partitionReplication") or ""))
    if isinstance(replication, int) and len(live) == 1 and int(live[0]) != replication:
        drift.append(
            f"default-replication is {replication} but partitions are replicated {provisioned['partitionReplication']}"
        )
    return drift


def drift_condition(rsc: Obj) -> dict[str, Any] | None:
    provisioned = (rsc.get("status") or {}).get("provisionedConfiguration")
    if not provisioned:
        return None
    drift = config_drift(rsc["spec"].get("config") or "", provisioned)
    if not drift:
        return {"type": "ConfigDrift", "status": "False", "reason": "AsProvisioned", "message": ""}
    return {
        "type": "ConfigDrift",
        "status": "True",
        "reason": "ConfigDrift",
        "message": "; ".join(drift) + " (fixed when the cluster was provisioned; change it with restatectl)",
    }


async def _provision(steps: Steps, rsc: Obj, namespace: str) -> tuple[str | None, dict[str, Any]]:
    """Provision through restate-0; returns (what it waits for, the provisioned configuration)."""
    if not self_provisioning_disabled(rsc):
        raise errors.InvalidSpec(
            "spec.cluster.autoProvision needs the nodes not to provision themselves: set "
            "`auto-provision = false` in spec.config, or env RESTATE_AUTO_PROVISION=false in spec.compute.env"
        )
    phase = await steps.run("get Pod restate-0", pod_phase, steps, namespace, "restate-0")
    if phase != "Running":
        return f"waiting for pod restate-0 to run before provisioning (phase {phase or 'absent'})", {}
    address = f"restate-0.restate-cluster.{namespace}.svc.{steps.settings.cluster_dns}:5122"
    result = await steps.run("provision cluster", node_ctl.provision, address)
    return None, result["configuration"]


def _mount_hint(rsc: Obj) -> str:
    """Where to look when nodes do not start: the Secrets they mount, which the operator cannot check."""
    security = rsc["spec"].get("security") or {}
    secrets = list(security.get("trustedCaCerts") or [])
    if signing := (security.get("requestSigningPrivateKey") or {}).get("secret"):
        secrets.append(signing)
    if not secrets:
        return ""
    names = ", ".join(f"{s['secretName']} (key {s['key']})" for s in secrets)
    return f"; if the pods stay ContainerCreating, check that these Secrets exist in {namespace_of(rsc)}: {names}"


async def finalize(steps: Steps, rsc: Obj) -> Outcome:
    """Children (and an owned namespace) are garbage-collected; a pre-existing namespace stays."""
    return Outcome(ready=True, reason="Deleted", message="children are garbage-collected")


RECONCILER = Reconciler(kind=kinds.CLUSTER, converge=converge, finalize=finalize)
