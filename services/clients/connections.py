"""What every reconciler reaches the outside world with: the settings and one shared Kubernetes connection.

Handed to the reconcilers as one object (not globals), so tests can build their own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.clients import permissions
from services.clients.kube import Kube
from services.settings import Settings


@dataclass
class Connections:
    settings: Settings
    _kube: Kube | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def kube(self) -> Kube:
        """The Kubernetes client, connected on first use (inside the server's event loop)."""
        async with self._lock:
            if self._kube is None:
                self._kube = await Kube.connect(
                    self.settings.kubeconfig,
                    grants=permissions.SERVICES,
                    operator_namespace=self.settings.operator_namespace,
                )
            return self._kube

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
