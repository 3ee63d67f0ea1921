"""A session with a Restate admin API, its bearer token read inside the calling step.

`register.cloud` calls need the environment's API token. It is read from its Secret inside the
journaled step that makes the call and is never a step's result, so it never reaches the journal,
the logs, a status or an Event; a rotated Secret counts from the next call on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services import errors
from services.builders.deployment import AdminEndpoint, TokenSecret
from services.clients.connections import Connections
from services.clients.restate_admin import RestateAdmin


@asynccontextmanager
async def admin(connections: Connections, endpoint: AdminEndpoint) -> AsyncIterator[RestateAdmin]:
    """A client for `endpoint`, with its bearer token read now, inside the calling step: the token
    is never a step result, so it never reaches the journal (and a rotated Secret counts at once)."""
    token = await read_token(connections, endpoint.token) if endpoint.token else None
    async with RestateAdmin(endpoint.url, token=token) as client:
        try:
            yield client
        except errors.Rejected as exc:
            if endpoint.token is None or exc.status not in (401, 403):
                raise
            secret = endpoint.token
            raise errors.Forbidden(
                f"Restate Cloud refused the API token from Secret {secret.namespace}/{secret.name} (key {secret.key}), "
                f"which {secret.owner} names (HTTP {exc.status}); put a valid API token for the environment there: "
                "the next reconcile uses it",
                reason="CloudTokenRejected",
            ) from exc


async def read_token(connections: Connections, secret: TokenSecret) -> str:
    where = f"Secret {secret.namespace}/{secret.name}"
    data = await (await connections.kube()).secret_data(secret.name, secret.namespace)
    if data is None:
        raise errors.PermanentError(
            f"{where}, which {secret.owner} names for its API token, does not exist: create it with the token "
            f"under key {secret.key}",
            reason="SecretNotFound",
        )
    if secret.key not in data:
        raise errors.PermanentError(
            f"{where} has no key {secret.key}, which {secret.owner} names for its API token: add it, or "
            "change spec.authentication.secret.key",
            reason="SecretKeyNotFound",
        )
    try:
        token = data[secret.key].strip().decode()  # Secrets often end in a newline
    except UnicodeDecodeError:
        token = ""
    if not token:
        raise errors.PermanentError(
            f"{where} key {secret.key}, the API token of {secret.owner}, is empty or not text: put the token there",
            reason="InvalidBearerToken",
        )
    return token


async def token_problem(connections: Connections, secret: TokenSecret) -> tuple[str, str] | None:
    """(reason, message) when the token cannot be used, else None (the token itself never leaves)."""
    try:
        await read_token(connections, secret)
    except errors.PermanentError as exc:
        return exc.reason, exc.message
    return None
