"""Restate Cloud for end-to-end tests: the environment, its token Secret and calls through its ingress.

The double itself is devstack/cloud.py; the `cloud` fixture (tests/e2e/conftest.py) starts one per module.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from devstack.cloud import CloudDouble
from devstack.operator import OPERATOR_NAMESPACE
from devstack.stack import Stack
from tests.helpers import apply

Obj = dict[str, Any]
REGION = "eu"
SECRET = "cloud-token"


def set_token(stack: Stack, token: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": OPERATOR_NAMESPACE},
        "data": {"token": base64.b64encode(f"{token}\n".encode()).decode()},  # a trailing newline, as files have
    }
    apply(stack, secret)


def environment(name: str, environment_id: str) -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateCloudEnvironment",
        "metadata": {"name": name},
        "spec": {
            "environmentId": f"env_{environment_id}",
            "region": REGION,
            "signingPublicKey": "publickeyv1_2mjpwSmD6C2cyoZEo6xrc7AHmBqUPEsUPgVmJLmKqVDUEKAzU",
            "authentication": {"secret": {"name": SECRET, "key": "token"}},
        },
    }


def through_cloud(double: CloudDouble, handler: str, body: Any = None, *, send: bool = False) -> httpx.Response:
    """Call the example's `Versioned` service through the environment's ingress, with the token."""
    with double.ingress() as ingress:
        return ingress.post(f"/Versioned/{handler}{'/send' if send else ''}", json=body)
