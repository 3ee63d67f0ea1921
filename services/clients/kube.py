"""A thin async Kubernetes client: server-side apply, reads, deletes, watches and Events.

Built on kubernetes-asyncio's ApiClient for configuration and authentication (kubeconfig, in-cluster
service account, token refresh), but talking plain JSON on resource paths from one table, so every
kind (ours included) goes through the same few verbs. Errors are translated to `clients.errors`.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from services import errors, metrics
from services.clients.permissions import APPLY, CREATE, DELETE, GET, LIST, PATCH, WATCH, Grant
from services.kinds import RESOURCES, Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "restate-operator"
REPORTING_CONTROLLER = "restate-operator"  # as upstream: `kubectl events` filters keep working after a swap
# PartialObjectMetadata: objects without spec, data or status (what a watch of Secrets needs).
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def resource_of(obj: Mapping[str, Any]) -> Resource:
    res = RESOURCES.get(obj["kind"])
    if res is None or res.api_version != obj["apiVersion"]:
        raise errors.Invalid(f"unsupported kind {obj['apiVersion']}/{obj['kind']}")
    return res


def _resolve_environment_once(api: client.ApiClient) -> None:
    """Read the proxy variables once, not on every request.

    kubernetes-asyncio's aiohttp session has `trust_env=True`, which looks up the proxy variables
    and parses ~/.netrc in a worker thread before each request: ~1 ms of CPU per request, several
    per reconcile pass. The proxy (honouring NO_PROXY) is resolved here instead; netrc credentials
    never applied, every request carries the client's own credentials."""
    rest = api.rest_client
    server = urllib.parse.urlsplit(str(api.configuration.host))
    proxy = urllib.request.getproxies().get(server.scheme)
    if proxy and not rest.proxy and not urllib.request.proxy_bypass(server.hostname or ""):
        rest.proxy = proxy
    old: aiohttp.ClientSession = rest.pool_manager
    connector = old.connector
    old.detach()  # keeps the connector (its TLS context and pool) for the new session
    rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)


def micro_time(now: datetime.datetime | None = None) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kube:
    """One authenticated connection to the Kubernetes API. Use `await Kube.connect()`; `close()` when done.

    Every call is checked against `grants` (`clients.permissions`): a verb the table does not declare,
    or a namespace-only grant used elsewhere, raises `errors.NotGranted` before anything is sent.
    """

    def __init__(
        self, api: client.ApiClient, *, grants: Mapping[str, Grant], operator_namespace: str | None = None
    ) -> None:
        self._api = api
        self._grants, self._operator_namespace = grants, operator_namespace

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, *, grants: Mapping[str, Grant], operator_namespace: str | None = None
    ) -> Kube:
        """From a kubeconfig file if given, else in-cluster, else the default kubeconfig."""
        if kubeconfig:
            api = await config.new_client_from_config(config_file=kubeconfig)
        else:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
                api = client.ApiClient()
            except ConfigException:
                api = await config.new_client_from_config()
        _resolve_environment_once(api)
        return cls(api, grants=grants, operator_namespace=operator_namespace)

    def _check(
        self, res: Resource, verbs: frozenset[str], namespace: str | None, subresource: str | None = None
    ) -> None:
        """Refuse what `clients.permissions` does not grant, so RBAC and code cannot drift apart."""
        key = f"{res.kind}/{subresource}" if subresource else res.kind
        grant = self._grants.get(key)
        missing = verbs - grant.verbs if grant else verbs
        if missing:
            raise errors.NotGranted(
                f"{', '.join(sorted(missing))} on {key} is not declared in services/clients/permissions.py"
            )
        if grant and grant.operator_namespace and namespace != self._operator_namespace:
            raise errors.NotGranted(f"{key} is granted only in the operator namespace {self._operator_namespace}")

    async def close(self) -> None:
        await self._api.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        deadline: float = 30.0,
    ) -> Any:
        try:
            response = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": accept},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=deadline,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise errors.Unavailable(f"Kubernetes API unreachable ({method} {path}): {errors.describe(exc)}") from exc
        async with response:
            text = await response.text()
            if 200 <= response.status < 300:
                return json.loads(text) if text else None
            raise errors.from_status(
                response.status,
                _explain(method, path, text),
                retry_after=errors.parse_retry_after(response.headers.get("Retry-After")),
            )

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        self._check(res, frozenset({GET}), namespace)
        try:
            obj: Obj = await self._request("GET", res.path(namespace, name))
        except errors.NotFound:
            return None
        return obj

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        metadata_only: bool = False,
    ) -> Obj:
        """The List object (items and metadata.resourceVersion); only the items' metadata if asked."""
        self._check(res, frozenset({LIST}), namespace)
        query = [("labelSelector", label_selector)] if label_selector else []
        accept = METADATA_LIST if metadata_only else "application/json"
        listed: Obj = await self._request("GET", res.path(namespace), query=query, accept=accept)
        return listed

    async def apply(self, obj: Obj, *, field_manager: str = FIELD_MANAGER, subresource: str | None = None) -> Obj:
        """Server-side apply `obj` (force: the operator owns what it declares)."""
        res = resource_of(obj)
        meta = obj["metadata"]
        self._check(res, frozenset({PATCH}) if subresource else APPLY, meta.get("namespace"), subresource)
        applied: Obj = await self._request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"], subresource),
            query=[("fieldManager", field_manager), ("force", "true")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        metrics.KUBE_WRITES.labels(kind=res.kind, verb="apply-status" if subresource else "apply").inc()
        return applied

    async def remove_finalizer(self, res: Resource, name: str, namespace: str | None, finalizer: str) -> bool:
        """Remove `finalizer` whoever added it; False when the object or the entry is already gone.

        A JSON patch (test the entry at its index, then remove it), as kube-rs does: an apply of a
        shorter list under our field manager would leave an entry another manager owns (upstream's
        operator adds its finalizers by JSON patch, recorded as manager "unknown"), and deletion hangs.
        """
        self._check(res, frozenset({GET, PATCH}), namespace)
        for _ in range(3):  # the list may change between our read and our patch: the test op catches it
            obj = await self.get(res, name, namespace)
            finalizers = (obj or {}).get("metadata", {}).get("finalizers") or []
            if finalizer not in finalizers:
                return False
            index = finalizers.index(finalizer)
            ops = [
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ]
            try:
                await self._request(
                    "PATCH", res.path(namespace, name), body=ops, content_type="application/json-patch+json"
                )
            except errors.NotFound:
                return False
            except (errors.Invalid, errors.Conflict):
                continue  # the test op failed: read again
            metrics.KUBE_WRITES.labels(kind=res.kind, verb="patch").inc()
            return True
        raise errors.Conflict(f"finalizer {finalizer} of {res.kind} {name}: the list kept changing; retrying later")

    async def secret_data(self, name: str, namespace: str) -> dict[str, bytes] | None:
        """A Secret's decoded values, or None when it does not exist. Callers use them at once and
        never return, log or journal them."""
        secret = await self.get(RESOURCES["Secret"], name, namespace)
        if secret is None:
            return None
        data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
        return data | {key: str(value).encode() for key, value in (secret.get("stringData") or {}).items()}

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, propagation: str = "Background"
    ) -> bool:
        """Delete; False when it was already gone."""
        self._check(res, frozenset({DELETE}), namespace)
        try:
            await self._request("DELETE", res.path(namespace, name), body={"propagationPolicy": propagation})
        except errors.NotFound:
            return False
        metrics.KUBE_WRITES.labels(kind=res.kind, verb="delete").inc()
        return True

    async def event(
        self,
        regarding: Obj,
        *,
        type_: str,
        reason: str,
        note: str,
        action: str,
        reporting_instance: str,
    ) -> None:
        """Publish an events.k8s.io/v1 Event about `regarding` (cluster-scoped objects: namespace default)."""
        meta = regarding["metadata"]
        namespace = meta.get("namespace") or "default"
        self._check(RESOURCES["Event"], frozenset({CREATE}), namespace)
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # Named like client-go's recorder (`<object>.<hex nanoseconds>`), so they list in the order they
            # happened: `kubectl describe` sorts by the deprecated lastTimestamp, which an events.k8s.io
            # Event with an eventTime must leave unset, and so keeps the list order.
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "regarding": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "note": errors.truncate(note, 1024),
            "action": action,
            "eventTime": micro_time(now),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": reporting_instance,
        }
        await self._request("POST", RESOURCES["Event"].path(namespace), body=body)
        metrics.KUBE_WRITES.labels(kind="Event", verb="create").inc()

    async def watch(
        self,
        res: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Obj]:
        """Watch events ({type, object}) from `resource_version`, with bookmarks, until the server ends it.
        In one namespace if given; objects as metadata only if asked (a Secret's values never arrive).

        A 410 Gone arrives as an ERROR event whose object is a Status with code 410: the caller relists.
        """
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        self._check(res, frozenset({WATCH}), namespace)
        try:
            response = await self._api.call_api(
                res.path(namespace),
                "GET",
                query_params=query,
                header_params={"Accept": METADATA if metadata_only else "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=timeout_seconds + 30),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise errors.Unavailable(
                f"Kubernetes API unreachable (watch {res.plural}): {errors.describe(exc)}"
            ) from exc
        async with response:
            if response.status != 200:
                text = await response.text()
                raise errors.from_status(response.status, f"watch {res.plural}: {_status_message(text)}")
            try:
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise errors.Unavailable(f"watch {res.plural} broke: {errors.describe(exc)}") from exc


def _explain(method: str, path: str, text: str) -> str:
    """A refusal as a person reads it: the Status message alone when it names the object (it does:
    `ReplicaSet.apps "x" is invalid: spec...`), else the request and what came back. The URL path
    in front of a Status message only pushed the cause past the 500-character truncation."""
    message = _status_message(text)
    return message if '"' in message else f"{method} {path}: {message}"


def _status_message(text: str) -> str:
    """The `message` of a Kubernetes Status body, else the (truncated) text."""
    try:
        status = json.loads(text)
    except ValueError:
        return errors.truncate(text)
    if isinstance(status, dict) and status.get("kind") == "Status":
        return str(status.get("message") or status.get("reason") or "")
    return errors.truncate(text)
