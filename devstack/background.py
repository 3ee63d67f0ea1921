"""A thread with an event loop of its own, for the stack's in-process players (the Knative data plane,
the Restate Cloud double): started and stopped from the tests' thread, logging to a file of its own.

A subclass writes `_main()`, which calls `self._ready()` once it serves and returns when
`self._stop` is set; a failure before that is raised by `start()`, one after it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path


class BackgroundLoop:
    name = "background"  # the thread's name, and what messages call it

    def __init__(self, log_file: Path, logger: logging.Logger) -> None:
        self.log_file, self.logger = log_file, logger
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._handler: logging.Handler | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.log_file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.logger.addHandler(self._handler)
        self.logger.setLevel(logging.INFO)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            self.stop()
            raise RuntimeError(f"the {self.name} did not start") from self._failure

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the loop to stop (its `_main` cleans up) and wait for the thread."""
        if self._thread is not None:
            if self._loop is not None and self._stop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the {self.name} did not stop within {timeout:g}s; it waits in:\n{self._waiting()}")
            self._thread = None
        if self._handler is not None:
            self.logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def _waiting(self) -> str:
        """Where the loop's tasks are (read from another thread: good enough to say why it hangs)."""
        if self._loop is None:
            return ""
        lines = []
        for task in list(asyncio.all_tasks(self._loop)):
            frames = task.get_stack(limit=3)
            where = " <- ".join(f"{f.f_code.co_name} ({Path(f.f_code.co_filename).name}:{f.f_lineno})" for f in frames)
            lines.append(f"{task.get_name()}: {where}")
        return "\n".join(lines)

    def _ready(self) -> None:
        self._started.set()

    def _run(self) -> None:
        try:
            asyncio.run(self._enter())
        except BaseException as exc:  # reported by start() or in the log; a thread has nobody to raise to
            self._failure = exc
            self.logger.exception("the %s stopped on an error", self.name)
        finally:
            self._started.set()

    async def _enter(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self._main()

    async def _main(self) -> None:
        raise NotImplementedError
