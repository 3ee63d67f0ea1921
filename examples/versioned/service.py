"""`Versioned`: which version answered, and a handler that holds an invocation open."""

from __future__ import annotations

import os
from datetime import timedelta

import restate


def service_name() -> str:
    """`Versioned`, unless the container's env sets SERVICE_NAME: the soak runs several resources at
    once, each its own service (versions of one service replace each other in Restate's routing)."""
    return os.environ.get("SERVICE_NAME", "Versioned")


def build(version: str) -> restate.Service | restate.VirtualObject:
    if version == "breaking":
        return _as_object(version)
    service = restate.Service(service_name())

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
    obj = restate.VirtualObject(service_name())

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
    """The app of `version` (the image tag), which a container's VERSION env overrides: the soak
    rolls out many versions of two images and must tell each one's answers apart."""
    version = os.environ.get("VERSION", version)
    # "v1-side" also serves `VersionedSide`, a service the later versions no longer have.
    return restate.app(services=[build(version), *([_side(version)] if version == "v1-side" else [])])
