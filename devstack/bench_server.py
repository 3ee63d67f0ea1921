"""One process serving every pod of the light benchmark image: a Restate service per pod address.

A scale benchmark runs hundreds of RestateDeployments; a Python SDK process per pod would need
more memory and CPU than the machine has. For pods of `images.BENCH_IMAGE` the pod runner instead
writes a table `{"<ip>:<port>": [service, version]}` and this process serves each entry on its
own address: a Restate service of that name (handlers `whoami`, `hold`), so registration,
discovery and draining are real, each version separate. It reloads the table every 100 ms.

Usage: `python -m devstack.bench_server --table FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

import hypercorn.asyncio
import hypercorn.config
import restate

logger = logging.getLogger("bench-server")


def service_app(name: str, version: str) -> object:
    """The ASGI app of one pod: service `name`, answering which version it is."""
    service = restate.Service(name)

    @service.handler()
    async def whoami(ctx: restate.Context) -> str:
        return version

    @service.handler()
    async def hold(ctx: restate.Context, seconds: float) -> str:
        await ctx.sleep(timedelta(seconds=seconds))
        return version

    return restate.app(services=[service])


def read_table(path: Path) -> dict[str, tuple[str, str]]:
    try:
        return {address: (entry[0], entry[1]) for address, entry in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


async def serve_one(address: str, name: str, version: str, stop: asyncio.Event) -> None:
    config = hypercorn.config.Config()
    config.bind = [address]
    config.accesslog = None
    config.graceful_timeout = 1.0
    try:
        await hypercorn.asyncio.serve(service_app(name, version), config, shutdown_trigger=stop.wait)
    except OSError as exc:
        logger.warning("cannot serve %s on %s: %s", name, address, exc)


async def main(table: Path) -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    serving: dict[str, tuple[tuple[str, str], asyncio.Event, asyncio.Task[None]]] = {}
    parent = os.getppid()
    while not done.is_set() and os.getppid() == parent:  # orphaned when the pod runner was killed: go too
        wanted = read_table(table)
        for address in [a for a, (entry, _, _) in serving.items() if wanted.get(a) != entry]:
            _, stop, task = serving.pop(address)
            stop.set()
            await task
        for address, entry in wanted.items():
            if address not in serving:
                stop = asyncio.Event()
                serving[address] = (entry, stop, asyncio.create_task(serve_one(address, *entry, stop)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.1)
    for _, stop, _ in serving.values():
        stop.set()
    await asyncio.gather(*(task for _, _, task in serving.values()), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, required=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(parser.parse_args().table))
