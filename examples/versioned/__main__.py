"""`python -m examples.versioned --version v1`: serve one version of `Versioned` on `BIND_HOST:PORT`."""

from __future__ import annotations

import argparse
import asyncio

from examples.serving import serve
from examples.versioned.service import app

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    asyncio.run(serve(app(parser.parse_args().version)))
