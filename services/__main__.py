"""`python -m services`: serve the reconcilers (and probes) with hypercorn until SIGTERM.

The Restate SDK installs its own SIGTERM dispatcher on the first request, which would replace a
plain loop handler; registering through `restate.server.install_shutdown_hook` keeps ours. On
SIGTERM, in-flight invocations get SHUTDOWN_GRACE_SECONDS to finish; Restate retries the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import hypercorn.asyncio
import hypercorn.config
import restate.server

from services import app, metrics, probes, registration, request_identity
from services.clients.connections import Connections
from services.clients.restate_admin import RestateAdmin, close_shared
from services.settings import Settings

logger = logging.getLogger("services")


def _config(bind: str, grace: float) -> hypercorn.config.Config:
    config = hypercorn.config.Config()
    config.bind = [bind]
    config.graceful_timeout = grace
    config.accesslog = None
    config.h2_max_concurrent_streams = config.keep_alive_timeout = 2**31 - 1
    return config


async def serve(settings: Settings) -> None:
    connections = Connections(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    restate.server.install_shutdown_hook(loop, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    metrics.initialise()
    objects = app.services(connections)
    keys = request_identity.identity_keys(settings)
    restate_app = app.build(objects, keys)
    kinds = [r.kind.kind for r in app.RECONCILERS]
    logger.info(
        "serving reconcilers on %s (%s), probes on %s",
        settings.bind,
        "only requests signed by " + ", ".join(keys) if keys else "request identity not verified",
        settings.probes_bind,
    )

    async def register() -> None:
        if settings.restate_admin_url and settings.advertised_url:
            async with RestateAdmin(settings.restate_admin_url) as admin:
                expected = registration.handlers_of(objects)
                await registration.register_until_done(admin, settings.advertised_url, expected, stop)

    try:
        await asyncio.gather(
            register(),
            hypercorn.asyncio.serve(
                restate_app, _config(settings.bind, settings.shutdown_grace_seconds), shutdown_trigger=stop.wait
            ),
            probes.serve(lambda: (not stop.is_set(), {"kinds": kinds}), settings.probes_bind, stop),
        )
    finally:
        await connections.close()
        await close_shared()
        logger.info("stopped")


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
