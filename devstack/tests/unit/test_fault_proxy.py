"""The fault proxy against a local upstream: each fault is what the operator's client will meet."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.fault_proxy import Fault, FaultProxy
from devstack.tests.garbage import unclosed_after_collection


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, name="upstream", daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{server.server_address[1]}") as p:
            yield p
    finally:
        server.shutdown()
        server.server_close()


def post(proxy: FaultProxy, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(f"{proxy.url}/query", json={"query": "SELECT 1"}, timeout=timeout)


def test_passes_requests_through_and_records_them(proxy: FaultProxy) -> None:
    assert post(proxy).json() == {"query": "SELECT 1"}
    assert [(s.method, s.path, s.fault) for s in proxy.seen] == [("POST", "/query", "pass")]


def test_answers_an_injected_status_with_retry_after(proxy: FaultProxy) -> None:
    proxy.set(Fault.http(429, retry_after=2))
    answer = post(proxy)
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2")
    proxy.set(None)
    assert post(proxy).status_code == 200


def test_refuses_connections_then_listens_again_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.set(Fault.refuse())
    with pytest.raises(httpx.ConnectError):
        post(proxy)
    proxy.set(None)
    assert proxy.port == port
    assert post(proxy).status_code == 200


def test_a_black_hole_never_answers(proxy: FaultProxy) -> None:
    proxy.set(Fault.black_hole())
    with pytest.raises(httpx.ReadTimeout):
        post(proxy, timeout=0.5)
    proxy.set(None)
    assert post(proxy).status_code == 200


def test_slow_answers_late(proxy: FaultProxy) -> None:
    proxy.set(Fault.slow(0.4))
    started = time.monotonic()
    assert post(proxy).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_closing_with_a_request_in_flight_leaves_no_connection_open() -> None:
    """A proxy closed mid-request (a test ending while the operator still calls) ends that request
    with its loop; a handler left pending on the closed loop once leaked its connection, and the
    garbage collector's warning failed a later, unrelated test."""
    with FaultProxy("http://127.0.0.1:9") as proxy:
        proxy.set(Fault.slow(30))
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                post(proxy, timeout=30)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        procs.wait_until("the request at the proxy", lambda: proxy.seen, timeout=2, interval=0.02)
        assert proxy.seen, "the request reached the proxy"
    caller.join(5)
    assert [type(exc) for exc in outcome] == [httpx.RemoteProtocolError], "the caller saw the connection close"
    assert unclosed_after_collection() == []
