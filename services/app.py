"""The one explicit list of reconcilers handed to `restate.app()`."""

from __future__ import annotations

from typing import Any

import restate

from services.deps import Deps
from services.reconcilers import cloud, cluster, deployment
from services.reconcilers.framework import Kind, reconciler

KINDS: list[Kind] = [cluster.KIND, cloud.KIND, deployment.KIND]


def build(deps: Deps) -> Any:
    """The ASGI app serving every reconciler."""
    return restate.app(services=[reconciler(kind, deps) for kind in KINDS])
