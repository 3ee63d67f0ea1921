"""The admin client's error classification, against a fake admin API."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from services import errors
from services.clients import restate_admin
from services.clients.restate_admin import RestateAdmin, close_shared


def admin(handler: httpx.MockTransport, base: str = "http://restate:9070/prefix") -> RestateAdmin:
    return RestateAdmin(base, transport=handler)


async def test_register_sends_force_explicitly_and_keeps_the_path_prefix() -> None:
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "dp_1", "services": []})

    async with admin(httpx.MockTransport(api)) as client:
        assert (await client.register("http://svc:9080", use_http_11=True))["id"] == "dp_1"
    assert seen[0].url.path == "/prefix/deployments"
    assert json.loads(seen[0].content) == {
        "uri": "http://svc:9080",
        "force": False,
        "breaking": False,
        "use_http_11": True,
    }


async def test_breaking_change_is_a_permanent_rejection_with_restates_code() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"message": "[META0006] breaking change", "restate_code": "META0006"})

    async with admin(httpx.MockTransport(api)) as client:
        with pytest.raises(errors.Rejected) as rejected:
            await client.register("http://svc:9080")
    assert rejected.value.code == "META0006"
    assert "breaking change" in rejected.value.message


async def test_429_is_transient_with_retry_after() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")

    async with admin(httpx.MockTransport(api)) as client:
        with pytest.raises(errors.Unavailable) as busy:
            await client.query("SELECT 1")
    assert busy.value.retry_after == 7.0


async def test_deregistering_an_unknown_deployment_is_not_an_error() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        assert request.url.params["force"] == "true"
        return httpx.Response(404, json={"message": "not found"})

    async with admin(httpx.MockTransport(api)) as client:
        assert await client.deregister("dp_gone") is False


async def test_unreachable_admin_api_is_transient() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with admin(httpx.MockTransport(api)) as client:
        with pytest.raises(errors.Unavailable):
            await client.query("SELECT 1")


UNREACHABLE = [
    pytest.param(
        httpx.ConnectError("[Errno -2] Name or service not known"), "its host name does not resolve", id="dns"
    ),
    pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), "the connection was refused", id="refused"),
    pytest.param(httpx.ReadTimeout(""), "no answer in time (timed out)", id="timeout-without-text"),
]


@pytest.mark.parametrize(("raised", "cause"), UNREACHABLE)
async def test_an_unreachable_admin_api_is_named_with_its_cause_and_the_fix(raised: Exception, cause: str) -> None:
    """Regression: the message was `query: ConnectError('[Errno -2] Name or service not known')`."""

    def api(request: httpx.Request) -> httpx.Response:
        raise raised

    async with admin(httpx.MockTransport(api), "http://nowhere.example:9070") as client:
        with pytest.raises(errors.Unavailable) as unreachable:
            await client.query("SELECT 1")
    message = unreachable.value.message
    assert message.startswith("Restate admin API http://nowhere.example:9070 did not answer (query): " + cause)
    assert "port 9070" in message
    assert "Error(" not in message
    assert "[Errno" not in message


async def test_an_admin_url_that_is_not_restate_says_so() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nginx</html>", headers={"content-type": "text/html"})

    async with admin(httpx.MockTransport(api), "http://web.example:80") as client:
        with pytest.raises(errors.Rejected) as rejected:
            await client.query("SELECT 1")
    assert rejected.value.message == (
        "Restate admin API http://web.example/ refused query (HTTP 404): the answer (text/html) is not a Restate "
        "admin API's; point register at Restate's admin API (port 9070, not the ingress 8080)"
    )


async def test_query_asks_for_json_rows() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "application/json"
        return httpx.Response(200, json={"rows": [{"deployment_id": "dp_1", "active": True}]})

    async with admin(httpx.MockTransport(api)) as client:
        assert await client.query("SELECT 1") == [{"deployment_id": "dp_1", "active": True}]


async def test_admins_of_one_url_share_one_pooled_client_until_closed() -> None:
    first, second = RestateAdmin("http://restate:9070"), RestateAdmin("http://restate:9070/")
    other = RestateAdmin("http://elsewhere:9070")
    try:
        async with first, second:
            pooled = first._http()
            assert second._http() is pooled
            assert other._http() is not pooled
        assert not pooled.is_closed  # leaving `async with` keeps the pooled client for the next caller
    finally:
        await close_shared()
    assert pooled.is_closed
    assert first._http() is not pooled  # a later call makes a new one
    await close_shared()


async def test_token_goes_on_each_request_not_on_the_client() -> None:
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"rows": []})

    async with RestateAdmin("http://restate:9070", token="secret", transport=httpx.MockTransport(api)) as client:
        await client.query("SELECT 1")
        assert "authorization" not in client._http().headers
        assert "secret" not in repr(client)
    assert seen[0].headers["Authorization"] == "Bearer secret"
    assert seen[0].headers["Accept"] == "application/json"


async def test_schema_changes_queue_per_endpoint_and_a_long_wait_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most SCHEMA_CHANGES_AT_ONCE registrations and deregistrations reach one admin API at a
    time; dry runs and queries do not queue; one queued too long says why and is retried."""
    in_flight, most = 0, 0
    release = asyncio.Event()

    async def api(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        if request.method == "GET" or b"dry_run" in request.content:
            return httpx.Response(200, json={"services": [], "rows": []})
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(201, json={"id": "dp_1", "services": []})

    base = "http://queued.example:9070"
    async with admin(httpx.MockTransport(api), base) as client:
        changes = [asyncio.create_task(client.register(f"http://svc{i}:9080")) for i in range(5)]
        changes.append(asyncio.create_task(client.deregister("dp_0")))
        await asyncio.sleep(0.05)
        assert most == restate_admin.SCHEMA_CHANGES_AT_ONCE
        await client.register("http://svc:9080", dry_run=True)  # does not wait behind them
        release.set()
        await asyncio.gather(*changes)
        assert most == restate_admin.SCHEMA_CHANGES_AT_ONCE

        monkeypatch.setattr(restate_admin, "SCHEMA_QUEUE_SECONDS", 0.05)
        release.clear()
        stuck = [asyncio.create_task(client.register(f"http://svc{i}:9080")) for i in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(errors.Unavailable, match="waited 0 s behind this operator's other registrations"):
            await client.register("http://late:9080")
        release.set()
        await asyncio.gather(*stuck)
