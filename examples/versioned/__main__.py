"""Serve one version of `Versioned` on `BIND_HOST:PORT`, gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import hypercorn.asyncio
import hypercorn.config
import restate.server

from examples.versioned.service import app


async def serve(version: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    restate.server.install_shutdown_hook(loop, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    config = hypercorn.config.Config()
    config.bind = [f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '9080')}"]
    config.graceful_timeout = 5.0
    config.h2_max_concurrent_streams = config.keep_alive_timeout = 2**31 - 1
    await hypercorn.asyncio.serve(app(version), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    asyncio.run(serve(parser.parse_args().version))
