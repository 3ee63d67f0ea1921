"""Self-registration: the services process registers its own endpoint with the bootstrap Restate.

Why at start-up and not in a Helm hook Job: it needs no second image run, no hook ordering against
the bootstrap Restate (which may start later: we retry until it answers), and it repeats by itself on
every restart, upgrade and scale-out, where a hook runs once per release. Registering is idempotent:
the same URL with `force` keeps the deployment id and updates the handlers in place.

Caveat: during a rolling upgrade Restate's discovery request may reach an old pod behind the
Service. The registration is therefore checked against this process's own handlers and repeated
until Restate knows exactly them. Readiness does not wait for it: Restate discovers through the
Service, which only routes to ready pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from services import errors, metrics
from services.clients.restate_admin import RestateAdmin

logger = logging.getLogger(__name__)

Handlers = dict[str, list[str]]

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


def handlers_of(services: Iterable[Any]) -> Handlers:
    """Service name -> sorted handler names, for restate-sdk service objects."""
    return {service.name: sorted(service.handlers) for service in services}


def registered_handlers(response: dict[str, Any]) -> Handlers:
    """The same shape, from the admin API's answer to POST /deployments."""
    return {s["name"]: sorted(h["name"] for h in s.get("handlers", [])) for s in response.get("services", [])}


async def register_once(admin: RestateAdmin, url: str, expected: Handlers) -> str:
    """Register `url`; returns the deployment id, or raises TransientError while Restate sees other handlers."""
    response = await admin.register(url, force=True)
    seen = registered_handlers(response)
    if seen != expected:
        raise errors.Unavailable(
            f"Restate discovered {sorted(seen)} at {url}, not this version's {sorted(expected)}: "
            "an older pod answered; registering again"
        )
    return str(response["id"])


async def register_until_done(
    admin: RestateAdmin,
    url: str,
    expected: Handlers,
    stop: asyncio.Event,
    *,
    first_retry: float = FIRST_RETRY_SECONDS,
) -> None:
    """Retry with backoff until registered (or stopped); every failure is logged with what to check."""
    delay = first_retry
    while not stop.is_set():
        try:
            deployment_id = await register_once(admin, url, expected)
        except errors.OperatorError as exc:
            logger.warning(
                "could not register %s with the bootstrap Restate (%s); retrying in %.0f s", url, exc.message, delay
            )
        else:
            metrics.SELF_REGISTERED.set(1)
            logger.info("registered %s with the bootstrap Restate as %s", url, deployment_id)
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, MAX_RETRY_SECONDS)
