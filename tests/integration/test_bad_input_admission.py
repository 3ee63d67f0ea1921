"""Every bad input of `bad_input_cases` at admission: the apiserver refuses what its schema and
CEL rules can know, with a message that names the field; what only the operator can know is
accepted here and checked at run time (`test_bad_input.py`). Server-side dry runs: nothing persists.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from devstack.control_plane import ControlPlane
from devstack.stack import Stack
from devstack.tools import REPO
from tests.integration.bad_input_cases import CASES, Case, build

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kube(stack: Stack) -> ControlPlane:
    cp = stack.control_plane
    cp.kubectl("apply", "--server-side", "-f", str(REPO / "crd"))
    cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return cp


@pytest.fixture(scope="module")
def ns(kube: ControlPlane) -> Iterator[str]:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def test_the_table_has_at_least_sixty_bad_inputs() -> None:
    assert len([c for c in CASES if c.where != "ok"]) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_admission_refuses_what_it_can_know_and_accepts_the_rest(kube: ControlPlane, ns: str, case: Case) -> None:
    obj = build(case, **({"namespace": ns} if case.kind == "RestateDeployment" else {}))
    result = kube.kubectl_result("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj))
    if case.where == "admission":
        assert result.returncode != 0, f"{case.id} was accepted"
        assert case.says in result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert result.returncode == 0, result.stderr
