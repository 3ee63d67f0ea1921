"""The polling helpers everything waits with, on a virtual clock: no test here sleeps.

Covered: `wait_until` returns the first truthy result, treats errors as "not yet" and chains the
last one to its TimeoutError, and gives up early when the watched process dies;
`wait_until_async` awaits its check; `holds_for` checks at the start, throughout and at the end of
its window, and fails at the first poll that breaks the claim (falsy or raising).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack import procs


class VirtualTime:
    """Stands in for the `time` module inside `procs`: sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    virtual = VirtualTime()
    monkeypatch.setattr(procs, "time", virtual)
    return virtual


def answers(*results: Any) -> Callable[[], Any]:
    """A check returning (or raising) `results` one per call, then the last one forever."""
    queue: Iterator[Any] = iter(results)
    last: list[Any] = []

    def check() -> Any:
        result = next(queue, last[0] if last else None)
        last[:] = [result]
        if isinstance(result, Exception):
            raise result
        return result

    return check


@dataclass
class FakeProcess:
    name: str = "fake-server"
    lives_for: int = 2

    def alive(self) -> bool:
        self.lives_for -= 1
        return self.lives_for >= 0

    def log_tail(self) -> str:
        return "panic: out of cheese"


def test_wait_until_returns_the_first_truthy_result(clock: VirtualTime) -> None:
    assert procs.wait_until("ready", answers(None, 0, [], "ready"), timeout=10, interval=1) == "ready"
    assert clock.now == 3


def test_wait_until_counts_errors_as_not_yet(clock: VirtualTime) -> None:
    assert procs.wait_until("up", answers(ConnectionError("refused"), True), timeout=10, interval=1) is True
    assert clock.now == 1


def test_wait_until_times_out_naming_what_and_chaining_the_last_error(clock: VirtualTime) -> None:
    with pytest.raises(TimeoutError, match=r"after 5s waiting for the answer \(last error: ValueError\('bad'\)\)") as e:
        procs.wait_until("the answer", answers(ValueError("bad")), timeout=5, interval=1)
    assert isinstance(e.value.__cause__, ValueError)
    assert 5 < clock.now <= 6


def test_wait_until_gives_up_with_the_log_when_the_watched_process_dies(clock: VirtualTime) -> None:
    with pytest.raises(RuntimeError, match="fake-server exited while waiting for health:\npanic: out of cheese"):
        procs.wait_until("health", answers(False), timeout=60, interval=1, process=FakeProcess(lives_for=2))
    assert clock.now == 2, "it stopped at the first poll after the process died"


async def test_wait_until_async_awaits_its_check(clock: VirtualTime) -> None:
    calls = answers(None, KeyError("not yet"), "id-1")

    async def registered() -> Any:
        return calls()

    assert await procs.wait_until_async("registered", registered, timeout=10, interval=0) == "id-1"


def test_holds_for_checks_throughout_the_window_including_its_end(clock: VirtualTime) -> None:
    seen: list[float] = []

    def check() -> bool:
        seen.append(clock.now)
        return True

    procs.holds_for("quiet", check, seconds=1, interval=0.3)
    assert seen == pytest.approx([0, 0.3, 0.6, 0.9, 1.0])


def test_holds_for_fails_at_the_first_poll_that_breaks_the_claim(clock: VirtualTime) -> None:
    with pytest.raises(AssertionError, match=r"no retry: broken after 0\.4s of 5s"):
        procs.holds_for("no retry", answers(True, True, False, True), seconds=5, interval=0.2)
    assert clock.now == pytest.approx(0.4), "not at the end of the window"


def test_holds_for_counts_an_error_as_a_broken_claim(clock: VirtualTime) -> None:
    with pytest.raises(AssertionError, match=r"still registered: broken after 0\.0s") as e:
        procs.holds_for("still registered", answers(ConnectionError("refused")), seconds=5)
    assert isinstance(e.value.__cause__, ConnectionError)
