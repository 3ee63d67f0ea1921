"""Our finalizer on a resource: added under a field manager of its own, removed by a guarded JSON patch.

The finalizer list is shared with other controllers. Adding it with server-side apply under
`FINALIZER_MANAGER` owns exactly our entry; removing it goes through `Kube.remove_finalizer`, a
JSON patch whose `test` op makes sure we remove our entry and no one else's, whoever added it
(upstream's operator adds it with a JSON patch too).
"""

from __future__ import annotations

from services import errors
from services.clients.kube import Obj
from services.kinds import CustomKind
from services.reconcilers.steps import Steps

FINALIZER_MANAGER = "restate-operator/finalizer"


def has(kind: CustomKind, obj: Obj) -> bool:
    return kind.finalizer in (obj["metadata"].get("finalizers") or [])


async def add(steps: Steps, kind: CustomKind, obj: Obj) -> str | None:
    """Own our finalizer. Returns the new resourceVersion, None when the object is gone."""

    async def apply() -> str | None:
        meta = obj["metadata"]
        patch: Obj = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": meta["name"]}}
        if meta.get("namespace"):
            patch["metadata"]["namespace"] = meta["namespace"]
        patch["metadata"]["finalizers"] = [kind.finalizer]
        try:
            applied = await (await steps.kube()).apply(patch, field_manager=FINALIZER_MANAGER)
        except errors.NotFound:
            return None  # deleted meanwhile: nothing left to hold
        return str(applied["metadata"]["resourceVersion"])

    return await steps.run("add finalizer", apply)


async def remove(steps: Steps, kind: CustomKind, obj: Obj) -> bool:
    async def patch() -> bool:
        meta = obj["metadata"]
        return await (await steps.kube()).remove_finalizer(
            kind.resource, meta["name"], meta.get("namespace"), kind.finalizer
        )

    return await steps.run("remove finalizer", patch)
