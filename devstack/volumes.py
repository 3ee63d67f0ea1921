"""The kubelet's volume work for the pod runner: write each mounted volume to disk, then bind-mount it.

A pod's process runs in a private mount namespace (`unshare -m`) where each of its container's
volumeMounts is a bind mount of a directory this module filled: Secrets and ConfigMaps as files,
the projected ServiceAccount token (a real TokenRequest bound to the pod, so the apiserver
enforces the pod's own RBAC), the downward API namespace, emptyDirs and claims as empty
directories. `KUBERNETES_SERVICE_HOST/PORT` complete what in-cluster configuration reads.

Limits: subPath mounts and volume types other than those are skipped (logged), and so is a mount
over the stack's own directory (an emptyDir at /tmp: the host's stays visible); mounts are
read-write; missing mount points are created on the host (empty directories, removed again by
`remove_created_dirs` when the runner stops) because a bind mount needs an existing target.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

logger = logging.getLogger("pod-runner")

Obj = Mapping[str, Any]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class NotYet(Exception):
    """A volume's source does not exist yet: as a kubelet would, the pod waits (ContainerCreating)."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str


async def materialise(api: client.CoreV1Api, pod: Obj, container: Obj, root: Path) -> list[Mount]:
    """Write every volume `container` mounts under `root`; returns the bind mounts to make."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts = []
    for volume_mount in container.get("volume_mounts") or []:
        volume = volumes.get(volume_mount["name"])
        if volume is None or volume_mount.get("sub_path"):
            logger.warning("skipping mount %s of %s (subPath or unknown volume)", volume_mount["name"], _name(pod))
            continue
        if root.is_relative_to(volume_mount["mount_path"]):
            # A mount over the stack's own files (an emptyDir at /tmp) would hide the process's other
            # volumes, config and data: leave the host's (writable) directory in place instead.
            continue
        target = root / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        if not await _fill(api, pod, volume, target):
            logger.warning("skipping volume %s of %s: unsupported type", volume["name"], _name(pod))
            continue
        mounts.append(Mount(target, volume_mount["mount_path"]))
    return mounts


async def _fill(api: client.CoreV1Api, pod: Obj, volume: Obj, target: Path) -> bool:
    namespace = pod["metadata"]["namespace"]
    if secret := volume.get("secret"):
        data = await _secret(api, secret["secret_name"], namespace, bool(secret.get("optional")))
        _write(target, data, secret.get("items"))
    elif config_map := volume.get("config_map"):
        data = await _config_map(api, config_map["name"], namespace, bool(config_map.get("optional")))
        _write(target, data, config_map.get("items"))
    elif projected := volume.get("projected"):
        for source in projected.get("sources") or []:
            await _projected(api, pod, source, target)
    elif volume.get("empty_dir") is not None or volume.get("persistent_volume_claim"):
        pass  # an empty directory of its own (a claim keeps its data for the pod's lifetime here)
    else:
        return False
    return True


async def _projected(api: client.CoreV1Api, pod: Obj, source: Obj, target: Path) -> None:
    meta, namespace = pod["metadata"], pod["metadata"]["namespace"]
    if token := source.get("service_account_token"):
        body = {
            "spec": {
                "audiences": [token["audience"]] if token.get("audience") else [],
                "expirationSeconds": token.get("expiration_seconds") or 3607,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            }
        }
        account = pod["spec"].get("service_account_name") or "default"
        issued = await api.create_namespaced_service_account_token(account, namespace, body)
        (target / token["path"]).write_text(issued.status.token)
    elif config_map := source.get("config_map"):
        data = await _config_map(api, config_map["name"], namespace, bool(config_map.get("optional")))
        _write(target, data, config_map.get("items"))
    elif secret := source.get("secret"):
        data = await _secret(api, secret["name"], namespace, bool(secret.get("optional")))
        _write(target, data, secret.get("items"))
    elif downward := source.get("downward_api"):
        fields = {"metadata.namespace": namespace, "metadata.name": meta["name"], "metadata.uid": meta["uid"]}
        for item in downward.get("items") or []:
            path = (item.get("field_ref") or {}).get("field_path")
            if path in fields:
                (target / item["path"]).write_text(fields[path])


async def _secret(api: client.CoreV1Api, name: str, namespace: str, optional: bool) -> dict[str, bytes]:
    secret = await _read(api.read_namespaced_secret, "Secret", name, namespace, optional)
    return {k: base64.b64decode(v) for k, v in ((secret.data or {}) if secret else {}).items()}


async def _config_map(api: client.CoreV1Api, name: str, namespace: str, optional: bool) -> dict[str, bytes]:
    config_map = await _read(api.read_namespaced_config_map, "ConfigMap", name, namespace, optional)
    return {k: v.encode() for k, v in ((config_map.data or {}) if config_map else {}).items()}


async def _read(
    read: Callable[[str, str], Awaitable[Any]], kind: str, name: str, namespace: str, optional: bool
) -> Any:
    """The object; None when it is missing but optional; NotYet when it is missing and required."""
    try:
        return await read(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        if optional:
            return None
        raise NotYet(f"{kind} {namespace}/{name} not found") from exc


def _write(target: Path, data: Mapping[str, bytes], items: list[Obj] | None) -> None:
    """Each key as a file (or only the listed items, under their paths), as the kubelet projects them."""
    chosen = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
    for key, path in chosen:
        if key in data:
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[key])


def missing_dirs(mounts: list[Mount]) -> list[Path]:
    """Mount points (and their parents) that do not exist yet, outermost first."""
    missing: list[Path] = []
    for mount in mounts:
        path = Path(mount.target)
        chain = [p for p in [path, *path.parents] if not p.exists()]
        missing += [p for p in reversed(chain) if p not in missing]
    return missing


def create_dirs(paths: list[Path]) -> None:
    for path in paths:
        path.mkdir(exist_ok=True)


def remove_created_dirs(paths: list[Path]) -> None:
    """Undo `create_dirs`, innermost first, leaving any directory something else put content in."""
    for path in sorted(paths, key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir()
        except OSError:
            logger.warning("left %s in place (not empty or busy)", path)


def _name(pod: Obj) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
