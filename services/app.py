"""The one explicit list of reconcilers handed to `restate.app()`."""

from __future__ import annotations

from typing import Any

import restate

from services.deps import Deps
from services.reconcilers import cloud, cluster, deployment
from services.reconcilers.framework import Kind, reconciler

KINDS: list[Kind] = [cluster.KIND, cloud.KIND, deployment.KIND]


def services(deps: Deps) -> list[restate.VirtualObject]:
    return [reconciler(kind, deps) for kind in KINDS]


def build(objects: list[restate.VirtualObject], identity_keys: list[str]) -> Any:
    """The ASGI app serving every reconciler; with identity keys, only signed requests are served."""
    return restate.app(services=objects, identity_keys=identity_keys or None)
