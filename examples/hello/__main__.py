"""Serve the hello app the way a container would: `BIND_HOST:PORT`, graceful on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal

import hypercorn.asyncio
import hypercorn.config
import restate.server

from examples.hello.service import app


async def serve() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The SDK installs its own SIGTERM dispatcher on the first request; registering through it
    # keeps our stop hook alive instead of being replaced.
    restate.server.install_shutdown_hook(loop, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    config = hypercorn.config.Config()
    config.bind = [f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '9080')}"]
    config.graceful_timeout = 5.0
    config.h2_max_concurrent_streams = config.keep_alive_timeout = 2**31 - 1
    await hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(serve())
