"""`python -m examples.hello`: serve the hello app on `BIND_HOST:PORT`."""

from __future__ import annotations

import asyncio

from examples.hello.service import app
from examples.serving import serve

if __name__ == "__main__":
    asyncio.run(serve(app))
