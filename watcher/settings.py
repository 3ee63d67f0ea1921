"""The watcher's configuration, from the environment, in one frozen object."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from services import kinds


class WatcherSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    ingress_url: str = "http://127.0.0.1:8080"
    """RESTATE_INGRESS_URL: the bootstrap Restate's ingress, where reconcile requests are sent."""

    kubeconfig: str | None = None
    """KUBECONFIG: a kubeconfig file; unset means in-cluster (or ~/.kube/config outside a cluster)."""

    probes_bind: str = "0.0.0.0:8082"
    """PROBES_BIND: /healthz, /readyz (every watch has listed once) and /metrics."""

    resync_seconds: float = 300.0
    """RESYNC_SECONDS: every resource is forwarded at least this often, so drift heals without events
    (each at its own moment of the period: `mapping.resync_offset`)."""

    coalesce_seconds: float = 0.3
    """COALESCE_SECONDS: a resource is forwarded once no new event came for it for this long..."""

    coalesce_max_seconds: float = 1.5
    """COALESCE_MAX_SECONDS: ...or at the latest this long after its first pending event."""

    coalesce_leading_edge: bool = True
    """COALESCE_LEADING_EDGE: a spec change of a quiet resource is forwarded at once, not after the debounce."""

    watch_timeout_seconds: int = 300
    """WATCH_TIMEOUT_SECONDS: server-side timeout of one watch request (it is then resumed)."""

    max_in_flight: int = 16
    """MAX_IN_FLIGHT: concurrent forwards to the ingress."""

    operator_namespace: str = "restate-operator"
    """OPERATOR_NAMESPACE: where the Restate Cloud token Secrets live (their creation and rotation are watched)."""

    kinds: tuple[str, ...] = tuple(k.kind for k in kinds.CUSTOM)
    """WATCH_KINDS: comma-separated custom resource kinds to watch (those the services process serves)."""

    @classmethod
    def from_env(cls) -> WatcherSettings:
        env = os.environ
        values: dict[str, object] = {
            "ingress_url": env.get("RESTATE_INGRESS_URL"),
            "kubeconfig": env.get("KUBECONFIG"),
            "probes_bind": env.get("PROBES_BIND"),
            "resync_seconds": env.get("RESYNC_SECONDS"),
            "coalesce_seconds": env.get("COALESCE_SECONDS"),
            "coalesce_max_seconds": env.get("COALESCE_MAX_SECONDS"),
            "coalesce_leading_edge": env.get("COALESCE_LEADING_EDGE"),
            "watch_timeout_seconds": env.get("WATCH_TIMEOUT_SECONDS"),
            "max_in_flight": env.get("MAX_IN_FLIGHT"),
            "operator_namespace": env.get("OPERATOR_NAMESPACE"),
            "kinds": tuple(k.strip() for k in env["WATCH_KINDS"].split(",") if k.strip())
            if env.get("WATCH_KINDS")
            else None,
        }
        return cls.model_validate({k: v for k, v in values.items() if v is not None})
