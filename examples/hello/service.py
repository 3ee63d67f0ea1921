"""`Greeter`: one stateless handler and one keyed counter, enough to show a registration works."""

from __future__ import annotations

import restate

greeter = restate.Service("Greeter")
counter = restate.VirtualObject("GreetingCounter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    count = await ctx.object_call(increment, key=name, arg=None)
    return f"Hello, {name}! (greeting #{count})"


@counter.handler()
async def increment(ctx: restate.ObjectContext) -> int:
    count = (await ctx.get("count", type_hint=int) or 0) + 1
    ctx.set("count", count)
    return count


app = restate.app(services=[greeter, counter])
