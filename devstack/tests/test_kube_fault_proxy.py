"""The Kubernetes fault proxy does what it says, against the real apiserver, seen through the
operator's own client (so the scenarios in tests/e2e/test_apiserver_faults.py mean what they say)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.control_plane import ADMIN_TOKEN
from devstack.kube_fault_proxy import KubeFault, KubeFaultProxy
from devstack.stack import Stack
from devstack.tests.garbage import unclosed_after_collection
from services import errors
from services.clients.kube import Kube
from services.clients.permissions import APPLY, DELETE, GET, OBSERVE, Grant
from services.kinds import RESOURCES
from watcher.watching import watch_kind

pytestmark = pytest.mark.integration

CONFIG_MAP = RESOURCES["ConfigMap"]
GRANTS = {"ConfigMap": Grant(APPLY | OBSERVE | {GET, DELETE})}


@pytest.fixture(scope="module")
def proxy(stack: Stack) -> Iterator[KubeFaultProxy]:
    with KubeFaultProxy(stack.control_plane.server, stack.control_plane.ca_file) as p:
        yield p


@pytest.fixture
async def kube(proxy: KubeFaultProxy, tmp_path: Path) -> AsyncIterator[Kube]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(proxy.kubeconfig(ADMIN_TOKEN))
    k = await Kube.connect(str(kubeconfig), grants=GRANTS)
    yield k
    proxy.set(None)
    await k.close()


def config_map(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"v": value},
    }


async def _until(what: str, check: Callable[[], object]) -> None:
    async def checked() -> object:
        return check()

    await procs.wait_until_async(what, checked, timeout=20, interval=0.05)


async def test_requests_pass_through_unchanged_when_no_fault_is_set(kube: Kube) -> None:
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    applied = await kube.apply(config_map(name, "1"))
    assert applied["data"] == {"v": "1"}
    assert (await kube.get(CONFIG_MAP, name, "default") or {})["data"] == {"v": "1"}
    assert await kube.delete(CONFIG_MAP, name, "default")


async def test_a_conflict_fault_answers_every_nth_write_409_and_lets_reads_through(
    kube: Kube, proxy: KubeFaultProxy
) -> None:
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    fault = KubeFault.conflict(every=2)
    proxy.set(fault)
    await kube.apply(config_map(name, "1"))  # the 1st write passes
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await kube.apply(config_map(name, "2"))
    assert (await kube.get(CONFIG_MAP, name, "default") or {})["data"] == {"v": "1"}, "the refused write did nothing"
    assert len(proxy.met(fault)) == 1
    proxy.set(None)
    await kube.delete(CONFIG_MAP, name, "default")


async def test_a_throttle_fault_answers_429_with_its_retry_after(kube: Kube, proxy: KubeFaultProxy) -> None:
    proxy.set(KubeFault.throttle(retry_after=3))
    with pytest.raises(errors.Unavailable, match="Too many requests") as raised:
        await kube.get(CONFIG_MAP, "anything", "default")
    assert raised.value.retry_after == 3


async def test_cut_watches_break_open_streams_and_the_watcher_resumes_without_losing_a_change(
    kube: Kube, proxy: KubeFaultProxy
) -> None:
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    seen: list[tuple[str, str]] = []
    task = asyncio.ensure_future(
        watch_kind(
            kube, CONFIG_MAP, lambda kind, obj: seen.append((kind, obj["metadata"]["name"])), namespace="default"
        )
    )
    try:
        await _until("a watch open", lambda: any(s.watch for s in proxy.seen))
        fault = KubeFault.cut_watches(after=0.5)
        proxy.set(fault)
        await kube.apply(config_map(name, "1"))  # made while the watch is broken, again and again
        await _until("the change seen", lambda: ("ADDED", name) in seen or ("MODIFIED", name) in seen)
        assert len(proxy.met(fault)) >= 1, "the watch was cut"
    finally:
        task.cancel()
        proxy.set(None)
        await kube.delete(CONFIG_MAP, name, "default")


async def test_gone_makes_the_watcher_list_again_and_see_what_changed_meanwhile(
    kube: Kube, proxy: KubeFaultProxy
) -> None:
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    listed = 0

    def on_listed() -> None:
        nonlocal listed
        listed += 1

    seen: list[str] = []
    task = asyncio.ensure_future(
        watch_kind(
            kube,
            CONFIG_MAP,
            lambda _, obj: seen.append(obj["metadata"]["name"]),
            namespace="default",
            on_listed=on_listed,
        )
    )
    try:
        await _until("listed and watching", lambda: listed == 1 and any(s.watch for s in proxy.seen))
        fault = KubeFault.gone()
        proxy.set(fault)
        await _until("a resumed watch met 410", lambda: proxy.met(fault))
        await kube.apply(config_map(name, "1"))
        proxy.set(None)
        await _until("the change seen", lambda: name in seen)
        assert listed >= 2, "410 Gone made the watcher list again"
    finally:
        task.cancel()
        await kube.delete(CONFIG_MAP, name, "default")


def _close_with_watches_cut(stack: Stack) -> None:
    """Four watches through a proxy, cut, and the proxy closed at once (as a test that ends with its
    fault on); on return nothing refers to the proxy, so what its closed loop holds is garbage."""
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with KubeFaultProxy(stack.control_plane.server, stack.control_plane.ca_file) as proxy:
        url = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=1"

        def watch() -> None:
            with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", url, headers=auth, timeout=30) as stream:
                for _ in stream.iter_bytes():
                    pass

        watchers = [threading.Thread(target=watch, daemon=True) for _ in range(4)]
        for watcher in watchers:
            watcher.start()
        procs.wait_until("four watches through the proxy", lambda: sum(s.watch for s in proxy.seen) == 4, timeout=10)
        time.sleep(0.2)  # their upstream responses have begun
        proxy.set(KubeFault.cut_watches())
    for watcher in watchers:
        watcher.join(10)


def test_closing_leaves_no_connection_to_the_apiserver_open(stack: Stack) -> None:
    """A watch cut mid-stream closes its upstream TLS connection over the next turns of the loop
    (close alerts), untracked by aiohttp's session. A proxy that stopped its loop right after left
    such connections half closed, and the garbage collector's warnings failed a later test."""
    _close_with_watches_cut(stack)
    assert unclosed_after_collection() == []
