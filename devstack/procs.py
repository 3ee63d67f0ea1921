"""Start, wait for and stop the child processes of the local stack.

Every process is started by us, logs to a file we own, and is stopped by the PID we recorded:
never by name, so a developer's own servers on the same machine are left alone.

Waiting is polling, and everything that waits (the stack, its tests, the product's tests, the
benchmarks) polls with the helpers here: `wait_until` (and `wait_until_async` for async checks,
on the same bookkeeping) until something happens, `holds_for` to show that something does not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


@dataclass
class Process:
    """A child process with the log file it writes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; always reaps."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        else:
            self.popen.wait()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.alive():
            self.popen.kill()
        self.popen.wait()


def start(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start `argv` with stdout and stderr appended to `<log_dir>/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    return Process(name, popen, log)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; good enough on a machine we do not share with strangers."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Watched(Protocol):
    """Something a wait watches besides its condition: when it dies, waiting for it is pointless."""

    name: str

    def alive(self) -> bool: ...

    def log_tail(self) -> str: ...


class _Poll:
    """The bookkeeping `wait_until` and `wait_until_async` share: one deadline, the watched process, the last error."""

    def __init__(self, what: str, timeout: float, process: Watched | None) -> None:
        self.what, self.timeout, self.process = what, timeout, process
        self.deadline = time.monotonic() + timeout
        self.error: Exception | None = None

    def before_attempt(self) -> None:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"{self.process.name} exited while waiting for {self.what}:\n{self.process.log_tail()}")

    def after_attempt(self) -> None:
        """Give up once the deadline has passed, naming the check's last error."""
        if time.monotonic() > self.deadline:
            last = f" (last error: {self.error!r})" if self.error else ""
            tail = f"\n{self.process.log_tail()}" if self.process else ""
            raise TimeoutError(
                f"timed out after {self.timeout:.0f}s waiting for {self.what}{last}{tail}"
            ) from self.error


def wait_until(
    what: str, check: Callable[[], T], *, timeout: float, interval: float = 0.1, process: Watched | None = None
) -> T:
    """Poll `check` until it returns something truthy, and return that.

    An exception from `check` means "not yet" (the last one is chained to the TimeoutError).
    Fails early, with its log, if `process` dies meanwhile.
    """
    poll = _Poll(what, timeout, process)
    while True:
        poll.before_attempt()
        try:
            result = check()
        except Exception as exc:
            poll.error = exc
        else:
            if result:
                return result
        poll.after_attempt()
        time.sleep(interval)


async def wait_until_async(
    what: str,
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float,  # noqa: ASYNC109 - wait_until's signature; a deadline, not a cancellation of the check
    interval: float = 0.1,
    process: Watched | None = None,
) -> T:
    """`wait_until` for a check that must be awaited (async clients); the event loop runs meanwhile."""
    poll = _Poll(what, timeout, process)
    while True:
        poll.before_attempt()
        try:
            result = await check()
        except Exception as exc:
            poll.error = exc
        else:
            if result:
                return result
        poll.after_attempt()
        await asyncio.sleep(interval)


def holds_for(what: str, check: Callable[[], object], *, seconds: float, interval: float = 0.2) -> None:
    """Poll `check` for `seconds` and fail as soon as it is falsy or raises.

    For what must NOT happen within a window (a retry, a retirement): the claim is checked
    throughout the window, at its start and at its end, not only once after a sleep. Keep `check`
    to observing: anything it does (an invocation, a write) happens again at every poll.
    """
    start = time.monotonic()
    end = start + seconds
    while True:
        try:
            held = check()
        except Exception as exc:
            raise AssertionError(f"{what}: broken after {time.monotonic() - start:.1f}s of {seconds:g}s") from exc
        if not held:
            raise AssertionError(f"{what}: broken after {time.monotonic() - start:.1f}s of {seconds:g}s")
        now = time.monotonic()
        if now >= end:
            return
        time.sleep(min(interval, end - now))


def http_ok(url: str, *, ca_file: Path | None = None) -> bool:
    """True when GET `url` answers 2xx (an HTTPS url is checked against `ca_file`)."""
    context = ssl.create_default_context(cafile=os.fspath(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False
