"""`python -m watcher`: watch the custom resources and their children, forward changes to Restate.

Stateless: several replicas may run at once (forwards carry idempotency keys). SIGTERM or SIGINT
stops it promptly; a second signal is not needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from services import metrics
from watcher import supervisor
from watcher.settings import WatcherSettings


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics.initialise()
    await supervisor.run(WatcherSettings.from_env(), stop)


if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main())
