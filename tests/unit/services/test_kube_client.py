"""The Kubernetes client's connection set-up: the environment is read once, not per request."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from services.clients.kube import _resolve_environment_once


def api_client(host: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = host
    return client.ApiClient(configuration)


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [
        pytest.param("", "http://proxy:3128", id="proxied"),
        pytest.param("10.0.0.1", None, id="no-proxy-for-the-apiserver"),
    ],
)
async def test_proxy_is_resolved_once_and_the_session_stops_reading_the_environment(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, expected: str | None
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    api = api_client("https://10.0.0.1:6443")
    try:
        _resolve_environment_once(api)
        assert api.rest_client.proxy == expected
        assert api.rest_client.pool_manager.trust_env is False
        assert not api.rest_client.pool_manager.closed
    finally:
        await api.close()


async def test_an_explicit_proxy_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    api = api_client("https://10.0.0.1:6443")
    api.rest_client.proxy = "http://configured:3128"
    try:
        _resolve_environment_once(api)
        assert api.rest_client.proxy == "http://configured:3128"
    finally:
        await api.close()
