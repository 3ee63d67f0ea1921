"""What a RestateDeployment creates in Knative mode, per tag: a Configuration and a cluster-local Route.

A version is a tag: `spec.knative.tag` when set (keeping the tag and changing the template updates
that version in place: Knative makes a new Revision behind the same Route URL), else the template
hash that ReplicaSet mode uses. Both objects are named `<rsd>-<tag>`. The Configuration is owned by
the RestateDeployment and the Route by the Configuration, with the labels and annotations upstream
2.8 writes, so Knative resources taken over from it keep their Revisions.

Pure: a RestateDeployment (a dict as the API returns it) in, desired objects out. `validate` raises
`InvalidSpec` for templates Knative cannot route Restate's HTTP/2 (or HTTP/1.1) traffic to.
"""

from __future__ import annotations

from typing import Any

from services import errors
from services.builders import deployment
from services.builders.common import MANAGED_BY, Obj, owner_reference, user_annotations

API_VERSION = "serving.knative.dev/v1"
ROLLOUT_DURATION = "serving.knative.dev/rollout-duration"  # a Route setting: never copied to the Configuration
DEPLOYMENT_ANNOTATION = "restate.dev/deployment"
TAG_ANNOTATION = "restate.dev/tag"
REGISTERED_AT_ANNOTATION = "restate.dev/registered-at"
VISIBILITY_LABEL = "networking.knative.dev/visibility"
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
TARGET = "autoscaling.knative.dev/target"
INITIAL_SCALE = "autoscaling.knative.dev/initial-scale"
INVALID = "InvalidRestateConfig"  # upstream's reason for a template Knative mode cannot serve


def tag(rsd: Obj, collision_count: int | None = None) -> str:
    """The version's identity: the explicit tag, else the template hash (with the collision count)."""
    explicit = (rsd["spec"].get("knative") or {}).get("tag")
    return str(explicit) if explicit else deployment.version_hash(rsd, collision_count)


def explicit_tag(rsd: Obj) -> bool:
    return bool((rsd["spec"].get("knative") or {}).get("tag"))


def name(rsd: Obj, tag_: str) -> str:
    """The Configuration's and the Route's name."""
    return f"{rsd['metadata']['name']}-{tag_}"


def validate(rsd: Obj) -> None:
    """Exactly one container may declare ports, and one of its ports is named `h2c…` or `http1…`:
    Knative routes to that port and speaks the protocol its name says."""
    containers = rsd["spec"]["template"]["spec"].get("containers") or []
    with_ports = [c for c in containers if c.get("ports")]
    where = "spec.template.spec.containers"
    if len(with_ports) > 1:
        listed = ", ".join(str(c.get("name")) for c in with_ports)
        raise errors.InvalidSpec(
            f"{where}: only one container may define ports in Knative mode ({listed} do); remove the others' ports",
            reason=INVALID,
        )
    if not with_ports:
        raise errors.InvalidSpec(
            f"{where}: no container defines a port; Knative mode needs one port named h2c (HTTP/2, the default "
            "for Restate SDKs) or http1 (with spec.restate.useHttp11), e.g. {name: h2c, containerPort: 9080}",
            reason=INVALID,
        )
    container = with_ports[0]
    names = [str(p.get("name") or "") for p in container["ports"]]
    if not any(n.startswith(("h2c", "http1")) for n in names):
        raise errors.InvalidSpec(
            f"{where}[{container.get('name')}].ports: no port is named h2c… or http1… (found "
            f"{', '.join(repr(n) if n else 'an unnamed port' for n in names)}); Knative needs the name to route "
            "HTTP/2 (h2c) or HTTP/1.1 (http1) to the container",
            reason=INVALID,
        )


def _metadata_annotations(rsd: Obj, *drop: str) -> dict[str, str]:
    annotations = user_annotations(rsd)
    for key in drop:
        annotations.pop(key, None)
    annotations.pop(deployment.TUNNEL_NAME_ANNOTATION, None)
    return {**annotations, DEPLOYMENT_ANNOTATION: rsd["metadata"]["name"]}


def _labels(rsd: Obj, **extra: str) -> dict[str, str]:
    return {**(rsd["metadata"].get("labels") or {}), **MANAGED_BY, **extra}


def scale_annotations(rsd: Obj) -> dict[str, str]:
    """The autoscaling annotations `spec.knative` asks for; min-scale defaults to 0 as upstream's."""
    options = rsd["spec"].get("knative") or {}
    scale = {MIN_SCALE: str(options.get("minScale") if options.get("minScale") is not None else 0)}
    if options.get("maxScale") is not None:
        scale[MAX_SCALE] = str(options["maxScale"])
    if options.get("target") is not None:
        scale[TARGET] = str(options["target"])
    return scale


def configuration(rsd: Obj, tag_: str) -> Obj:
    """The tag's Configuration: the user's pod spec verbatim; user annotations win over ours."""
    template = rsd["spec"]["template"]
    template_meta = template.get("metadata") or {}
    pod_labels = {**(template_meta.get("labels") or {}), **MANAGED_BY}
    if cluster := rsd["spec"]["restate"]["register"].get("cluster"):
        pod_labels[f"allow.restate.dev/{cluster}"] = "true"
    pod_annotations = {
        **scale_annotations(rsd),
        **(template_meta.get("annotations") or {}),
        DEPLOYMENT_ANNOTATION: rsd["metadata"]["name"],
    }
    annotations = {**_metadata_annotations(rsd, ROLLOUT_DURATION), TAG_ANNOTATION: tag_}
    if not explicit_tag(rsd):
        annotations[deployment.TEMPLATE_ANNOTATION] = deployment.template_json(rsd)
    return {
        "apiVersion": API_VERSION,
        "kind": "Configuration",
        "metadata": {
            "name": name(rsd, tag_),
            "namespace": rsd["metadata"]["namespace"],
            "labels": _labels(rsd),
            "annotations": annotations,
            "ownerReferences": [owner_reference(rsd)],
        },
        "spec": {
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": template["spec"],
            }
        },
    }


def route(rsd: Obj, tag_: str, configuration_uid: str) -> Obj:
    """The tag's cluster-local Route: all traffic to the Configuration's latest ready Revision."""
    config_name = name(rsd, tag_)
    owner = {
        "apiVersion": API_VERSION,
        "kind": "Configuration",
        "name": config_name,
        "uid": configuration_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {
            "name": config_name,
            "namespace": rsd["metadata"]["namespace"],
            "labels": _labels(rsd, **{VISIBILITY_LABEL: "cluster-local"}),
            "annotations": _metadata_annotations(rsd),
            "ownerReferences": [owner],
        },
        "spec": {"traffic": [{"configurationName": config_name, "latestRevision": True, "percent": 100}]},
    }


def initial_scale(rsd: Obj) -> int:
    """Replicas a new Revision starts with, until it reports its own desired count (Knative's default 1)."""
    annotations = (rsd["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(INITIAL_SCALE, 1))
    except ValueError:
        return 1


def condition(obj: Obj | None, type_: str) -> dict[str, Any] | None:
    """A Knative object's condition of `type_`, when it reports one."""
    if obj is None:
        return None
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)
