"""Small helpers shared by integration and e2e tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.stack import tools
from tests.stack.stack import Stack

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, within: float = 30.0, interval: float = 0.2) -> T:
    """Await `check()` until it returns a truthy value, and return that value.

    Exceptions from `check` count as "not yet" until the deadline, then the last one is raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            result = await check()
        except Exception:
            if loop.time() > deadline:
                raise
        else:
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"not true within {within:.0f}s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


async def restate_cli(stack: Stack, *args: str) -> str:
    """Run the real `restate` CLI against the stack's server; returns stdout, raises on failure."""
    env = {
        **os.environ,
        "RESTATE_ADMIN_URL": stack.restate.admin_url,
        "RESTATE_INGRESS_URL": stack.restate.ingress_url,
        "CI": "true",
    }
    process = await asyncio.create_subprocess_exec(
        str(tools.restate_cli_bin()),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"restate {' '.join(args)} failed ({process.returncode}): {stderr.decode()}")
    return stdout.decode()


async def restate_sql(stack: Stack, query: str) -> list[dict[str, Any]]:
    """Rows of a SQL query against the stack's restate-server (NULL columns are absent)."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{stack.restate.admin_url}/query", json={"query": query}, headers={"accept": "application/json"}
        )
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows
