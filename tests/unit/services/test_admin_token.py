"""The Restate Cloud API token: read from its Secret when a call needs it, each problem named."""

from __future__ import annotations

from typing import Any

import pytest

from services import errors
from services.builders.deployment import TokenSecret
from services.reconcilers import admin

SECRET = TokenSecret("restate-operator", "cloud-token", "token", "RestateCloudEnvironment prod")


class FakeKube:
    def __init__(self, data: dict[str, bytes] | None) -> None:
        self.data = data

    async def secret_data(self, name: str, namespace: str) -> dict[str, bytes] | None:
        assert (namespace, name) == ("restate-operator", "cloud-token")
        return self.data


class FakeConnections:
    def __init__(self, data: dict[str, bytes] | None) -> None:
        self._kube = FakeKube(data)

    async def kube(self) -> FakeKube:
        return self._kube


def connections(data: dict[str, bytes] | None) -> Any:
    return FakeConnections(data)


async def test_the_token_is_trimmed_of_the_newline_secrets_often_end_in() -> None:
    assert await admin.read_token(connections({"token": b"  s3cret\n"}), SECRET) == "s3cret"
    assert await admin.token_problem(connections({"token": b"s3cret"}), SECRET) is None


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (None, "SecretNotFound", "Secret restate-operator/cloud-token, which RestateCloudEnvironment prod names"),
        ({"other": b"x"}, "SecretKeyNotFound", "has no key token"),
        ({"token": b" \n"}, "InvalidBearerToken", "is empty or not text"),
        ({"token": b"\xff\xfe"}, "InvalidBearerToken", "is empty or not text"),
    ],
)
async def test_each_problem_with_the_secret_is_named_and_permanent(
    data: dict[str, bytes] | None, reason: str, says: str
) -> None:
    with pytest.raises(errors.PermanentError) as raised:
        await admin.read_token(connections(data), SECRET)
    assert raised.value.reason == reason
    assert says in raised.value.message
    assert await admin.token_problem(connections(data), SECRET) == (reason, raised.value.message)
