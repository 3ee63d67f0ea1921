"""Fixtures of the end-to-end tests that need more than the session's stack and operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.cloud import CloudDouble
from devstack.operator import OPERATOR_NAMESPACE, Operator
from tests.e2e.cloud import REGION, SECRET, set_token


@pytest.fixture(scope="module")
def cloud(operator: Operator) -> Iterator[CloudDouble]:
    """One Restate Cloud environment played locally, with its token Secret (no RestateCloudEnvironment yet)."""
    stack = operator.stack
    environment_id = uuid.uuid4().hex[:12]
    double = CloudDouble(
        ca=stack.ca,
        kubeconfig=stack.control_plane.kubeconfig,
        hosts_file=stack.hosts_file,
        runner_state=stack.work / "pod-runner" / "state.json",
        restate_admin=stack.restate.admin_url,
        restate_ingress=stack.restate.ingress_url,
        environment_id=environment_id,
        region=REGION,
        token="right-token",
        operator_namespace=OPERATOR_NAMESPACE,
        log_file=stack.work / "logs" / "restate-cloud.log",
    )
    set_token(stack, double.token)
    double.start()
    try:
        yield double
    finally:
        double.stop()
        stack.control_plane.kubectl("delete", "secret", SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
