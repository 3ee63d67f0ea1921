"""Serve a Restate app the way a container would: on `BIND_HOST:PORT`, gracefully on SIGTERM.

The SDK installs its own SIGTERM dispatcher on the first request; registering our stop through
`restate.server.install_shutdown_hook` keeps it from being replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import hypercorn.asyncio
import hypercorn.config
import restate.server


async def serve(app: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    restate.server.install_shutdown_hook(loop, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    config = hypercorn.config.Config()
    config.bind = [f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '9080')}"]
    config.graceful_timeout = 5.0
    config.h2_max_concurrent_streams = config.keep_alive_timeout = 2**31 - 1
    await hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)
