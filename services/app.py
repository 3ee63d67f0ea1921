"""The one explicit list of reconcilers handed to `restate.app()`."""

from __future__ import annotations

from typing import Any

import restate

from services.clients.connections import Connections
from services.reconcilers import awaiting, cloud, cluster, deployment
from services.reconcilers.engine import Reconciler, virtual_object

RECONCILERS: list[Reconciler] = [cluster.RECONCILER, cloud.RECONCILER, deployment.RECONCILER]


def services(connections: Connections) -> list[restate.VirtualObject | restate.Service]:
    """Every reconciler, and the watch that wakes one when invocations it waits for have finished."""
    return [*(virtual_object(reconciler, connections) for reconciler in RECONCILERS), awaiting.SERVICE]


def build(objects: list[restate.VirtualObject | restate.Service], identity_keys: list[str]) -> Any:
    """The ASGI app serving every reconciler; with identity keys, only signed requests are served."""
    return restate.app(services=objects, identity_keys=identity_keys or None)
