"""`Versioned`: which version answered, and a handler that holds an invocation open."""

from __future__ import annotations

from datetime import timedelta

import restate


def build(version: str) -> restate.Service | restate.VirtualObject:
    if version == "breaking":
        return _as_object(version)
    service = restate.Service("Versioned")

    @service.handler()
    async def whoami(ctx: restate.Context) -> str:
        """The version that served this invocation."""
        return version

    @service.handler()
    async def hold(ctx: restate.Context, seconds: float) -> str:
        """Stay in flight for `seconds` (a durable sleep), then say which version finished it."""
        started = await ctx.run_typed("started on", lambda: version)
        await ctx.sleep(timedelta(seconds=seconds))
        return f"started on {started}, finished on {version}"

    return service


def _as_object(version: str) -> restate.VirtualObject:
    obj = restate.VirtualObject("Versioned")

    @obj.handler()
    async def whoami(ctx: restate.ObjectContext) -> str:
        return version

    return obj


def _side(version: str) -> restate.Service:
    side = restate.Service("VersionedSide")

    @side.handler()
    async def whoami(ctx: restate.Context) -> str:
        return version

    return side


def app(version: str) -> object:
    # "v1-side" also serves `VersionedSide`, a service the later versions no longer have.
    return restate.app(services=[build(version), *([_side(version)] if version == "v1-side" else [])])
