"""Our errors across Restate's journal and back: the one mapping (services/reconcilers/failures.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate
from restate.exceptions import RetryableError

from services import errors
from services.reconcilers import failures

PERMANENT = [
    pytest.param(errors.NotFound("gone"), "ReconcileFailed", id="not-found"),
    pytest.param(errors.Forbidden("no"), "Forbidden", id="forbidden"),
    pytest.param(errors.NotGranted("undeclared"), "Forbidden", id="not-granted"),
    pytest.param(errors.Invalid("bad object"), "InvalidObject", id="invalid"),
    pytest.param(errors.Rejected("META0006", status=400, code="META0006"), "AdminCallRejected", id="rejected"),
    pytest.param(errors.InvalidSpec("spec.x: wrong"), "InvalidSpec", id="invalid-spec"),
    pytest.param(errors.InvalidSpec("ports", reason="InvalidRestateConfig"), "InvalidRestateConfig", id="own-reason"),
]


@pytest.mark.parametrize(("error", "reason"), PERMANENT)
def test_a_permanent_error_crosses_the_journal_with_its_class_and_reason(
    error: errors.OperatorError, reason: str
) -> None:
    terminal = failures.to_restate(error)
    assert isinstance(terminal, restate.TerminalError)
    back = failures.from_terminal("apply Service x", terminal)
    assert type(back) is type(error)
    assert (back.reason, str(back)) == (reason, f"apply Service x: {error.message}")


def test_a_transient_error_with_retry_after_asks_restate_to_wait_that_long() -> None:
    retry = failures.to_restate(errors.Unavailable("429", retry_after=7))
    assert isinstance(retry, RetryableError)
    assert retry.retry_after == timedelta(seconds=7)


def test_a_transient_error_without_retry_after_is_retried_by_the_step_policy() -> None:
    retried = failures.to_restate(errors.Conflict("someone wrote first"))
    assert not isinstance(retried, restate.TerminalError | RetryableError)
    assert str(retried) == "someone wrote first"


def test_a_transient_error_journals_as_its_message_not_a_python_repr() -> None:
    # Regression: the SDK journals repr() of a failed step, and once its attempts ran out the resource
    # read `query Restate deployments: Unavailable("query: ConnectError('[Errno -2] ...')")`.
    error = errors.Unavailable(
        "Restate admin API http://nowhere:9070/ did not answer (query): its host name does not resolve"
    )
    assert repr(failures.to_restate(error)) == error.message


def test_restate_giving_up_on_retries_is_transient_for_the_resource() -> None:
    back = failures.from_terminal("register v2", restate.TerminalError("connection refused", status_code=500))
    assert type(back) is errors.TransientError
    assert (back.reason, str(back)) == ("TransientError", "register v2: connection refused")


def test_a_cancelled_invocation_is_not_a_failure_of_the_resource() -> None:
    assert failures.is_cancellation(restate.TerminalError("cancelled", status_code=409))
    assert not failures.is_cancellation(failures.to_restate(errors.Invalid("x")))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param(errors.NotFound("no version v9"), 404, id="unknown-version"),
        pytest.param(errors.InvalidSpec("spec: wrong"), 400, id="invalid-spec"),
        pytest.param(errors.Forbidden("rbac"), 403, id="forbidden"),
        pytest.param(errors.Unavailable("down"), 500, id="other"),
    ],
)
def test_a_commands_error_answers_the_caller_with_an_http_status(error: errors.OperatorError, status: int) -> None:
    terminal = failures.command_error(error)
    assert (terminal.status_code, terminal.message) == (status, error.message)
