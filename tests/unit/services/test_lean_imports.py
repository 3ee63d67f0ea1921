"""kubernetes-asyncio's generated API and models load only when something asks for them."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import services.clients.kube, watcher.supervisor
generated = ("kubernetes_asyncio.client.models.", "kubernetes_asyncio.client.api.")
loaded = [m for m in sys.modules if m.startswith(generated)]
print(len(loaded))
from kubernetes_asyncio import client
print(client.CoreV1Api.__name__, client.models.V1Pod.__name__, client.ApiClient.__name__)
"""


def test_the_operator_loads_no_generated_api_or_model_yet_both_still_resolve() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "CoreV1Api", "V1Pod", "ApiClient"]
