"""A thin client for a Restate server's admin API: register, deregister, list, SQL.

Every call has a timeout; 429 and 503 honour Retry-After; rejections carry Restate's own error
code (`META0006` for a breaking change) and message. The base URL may carry a path prefix (a proxy
in front of the admin API): it is kept on every call, unlike the upstream operator.

Changes to Restate's schema (registrations and deregistrations) go at most
`SCHEMA_CHANGES_AT_ONCE` at a time per admin endpoint from one process: Restate writes its whole
schema registry for each, and concurrent writers conflict and retry, so 500 at once (measured: a
500-resource create) exhausted its retries ("retries for operation on key 'schema_registry'
exhausted"), timed the admin API out for everything else, and converged far slower than a queue.
A queued change waits its turn for up to `SCHEMA_QUEUE_SECONDS`, then fails as Unavailable and is
retried. The wait is long on purpose: at 20 s, a 500-resource create failed about a thousand
attempts in the queue, each retried with backoff and its pass failed; a journaled step may block
for minutes (Restate aborts an attempt that sent nothing only after its inactivity and abort
timeouts, 1 + 10 minutes by default).

Connections are pooled: without an explicit `transport`, every `RestateAdmin` of one base URL (in
one event loop) shares one `httpx.AsyncClient`, made on first use and closed by `close_shared()`
at shutdown. Building a client costs ~57 ms of CPU (its TLS context), which was most of the
operator's CPU per change when each admin call made its own. A token is therefore never part of
the shared client: it goes on each request as an Authorization header.
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import Any

import httpx

from services import errors, metrics

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
SCHEMA_CHANGES_AT_ONCE = 2
SCHEMA_QUEUE_SECONDS = 240.0

# One pool per event loop: an httpx client's connections belong to the loop that opened them.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


_SCHEMA_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def shared_client(base_url: str) -> httpx.AsyncClient:
    """The pooled client of `base_url` in the running event loop, made on first use."""
    clients = _SHARED.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(base_url)
    if client is None or client.is_closed:
        client = clients[base_url] = httpx.AsyncClient(base_url=base_url, timeout=DEFAULT_TIMEOUT)
    return client


async def close_shared() -> None:
    """Close the running loop's pooled clients (at shutdown; a later call makes new ones)."""
    clients = _SHARED.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(client.aclose() for client in clients.values()))


class RestateAdmin:
    """`async with RestateAdmin(url) as admin: ...`; one instance per admin endpoint.

    Cheap to make: it borrows the pooled client of its base URL, unless given a `transport`
    (tests), in which case it owns a client of its own and closes it on exit."""

    def __init__(self, base_url: str, *, token: str | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self._base_url = base_url.rstrip("/") + "/"
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._owned = (
            httpx.AsyncClient(base_url=self._base_url, timeout=DEFAULT_TIMEOUT, transport=transport)
            if transport is not None
            else None
        )

    def __repr__(self) -> str:
        return f"RestateAdmin({self._base_url!r})"  # never the token

    def _http(self) -> httpx.AsyncClient:
        return self._owned if self._owned is not None else shared_client(self._base_url)

    async def __aenter__(self) -> RestateAdmin:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned is not None:
            await self._owned.aclose()

    async def _call(
        self, operation: str, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._http().request(method, path, headers={**(headers or {}), **self._auth}, **kwargs)
        except httpx.HTTPError as exc:
            metrics.ADMIN_CALLS.labels(operation=operation, outcome="unreachable").inc()
            raise errors.Unavailable(
                f"Restate admin API {self._base_url.rstrip('/')} did not answer ({operation}): {errors.describe(exc)}; "
                "check that the URL names a Restate admin API (port 9070) the operator can reach"
            ) from exc
        if response.is_success:
            metrics.ADMIN_CALLS.labels(operation=operation, outcome="ok").inc()
            return response
        metrics.ADMIN_CALLS.labels(operation=operation, outcome=str(response.status_code)).inc()
        raise _error(operation, response)

    async def _schema_change(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`_call`, in the endpoint's queue of schema changes (see the module's docstring)."""
        lanes = _SCHEMA_LANES.setdefault(asyncio.get_running_loop(), {})
        lane = lanes.setdefault(self._base_url, asyncio.Semaphore(SCHEMA_CHANGES_AT_ONCE))
        try:
            await asyncio.wait_for(lane.acquire(), SCHEMA_QUEUE_SECONDS)
        except TimeoutError:
            metrics.ADMIN_CALLS.labels(operation=operation, outcome="queued").inc()
            raise errors.Unavailable(
                f"Restate admin API {self._base_url.rstrip('/')}: {operation} waited {SCHEMA_QUEUE_SECONDS:.0f} s "
                "behind this operator's other registrations and deregistrations (Restate takes them one at a "
                "time); retrying"
            ) from None
        try:
            return await self._call(operation, method, path, **kwargs)
        finally:
            lane.release()

    async def register(
        self,
        uri: str,
        *,
        force: bool = False,
        use_http_11: bool | None = None,
        breaking: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """POST /deployments. `force` is always sent: an absent force acts as false on 1.7 but the docs say true.
        With `dry_run`, Restate discovers the endpoint and answers what it would register, registering nothing."""
        body: dict[str, Any] = {"uri": uri, "force": force, "breaking": breaking}
        if dry_run:
            body["dry_run"] = True
        if use_http_11 is not None:
            body["use_http_11"] = use_http_11
        call = self._call if dry_run else self._schema_change
        response = await call("register", "POST", "deployments", json=body)
        registered: dict[str, Any] = response.json()
        return registered

    async def deregister(self, deployment_id: str) -> bool:
        """DELETE /deployments/{id}?force=true; False when it was already gone."""
        try:
            await self._schema_change("deregister", "DELETE", f"deployments/{deployment_id}", params={"force": "true"})
        except errors.Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a SQL query; NULL columns are absent from a row (use `.get`)."""
        response = await self._call(
            "query", "POST", "query", json={"query": sql}, headers={"Accept": "application/json"}
        )
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows


def _error(operation: str, response: httpx.Response) -> errors.OperatorError:
    where = f"Restate admin API {response.request.url.copy_with(path='/', query=None)}"
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        message = str(body.get("message") or response.text)
        code = body.get("restate_code")
    except ValueError:
        # Restate answers every error as a JSON object: anything else is some other server.
        message, code = _not_restate(response), None
    text = f"{where} refused {operation} (HTTP {response.status_code}): {message}"
    status = response.status_code
    if status == 429 or (status >= 500 and code is None):
        return errors.Unavailable(text, retry_after=errors.parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500 and code in ("META0003", "META0014"):
        # The service endpoint was unreachable or HTTP/1.1-only: may heal as pods come up.
        return errors.Unavailable(text)
    return errors.Rejected(text, status=status, code=code)


def _not_restate(response: httpx.Response) -> str:
    """What to say when the answer is not Restate's (an HTML 404, a proxy's page, an ingress port)."""
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return (
        f"the answer ({kind}) is not a Restate admin API's; point register at Restate's admin API "
        "(port 9070, not the ingress 8080)"
    )
