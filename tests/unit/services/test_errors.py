from __future__ import annotations

import pytest

from services import errors


@pytest.mark.parametrize(
    ("status", "cls", "retry"),
    [
        (404, errors.NotFound, False),
        (409, errors.Conflict, True),
        (403, errors.Forbidden, False),
        (401, errors.Forbidden, False),
        (422, errors.Invalid, False),
        (400, errors.Invalid, False),
        (429, errors.Unavailable, True),
        (503, errors.Unavailable, True),
        (410, errors.Invalid, False),
    ],
)
def test_http_statuses_answer_retry_or_give_up(status: int, cls: type[errors.OperatorError], retry: bool) -> None:
    error = errors.from_status(status, "m", retry_after=3.0)
    assert type(error) is cls
    assert isinstance(error, errors.TransientError) is retry


def test_retry_after_and_long_messages() -> None:
    assert errors.parse_retry_after("2.5") == 2.5
    assert errors.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert len(errors.OperatorError("x" * 5000).message) == errors.MAX_MESSAGE


class _Wrapped(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        pytest.param(OSError(-2, "Name or service not known"), "its host name does not resolve", id="dns"),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), "the connection was refused", id="refused"),
        pytest.param(
            _Wrapped("Response payload is not completed: <TransferEncodingError: 400, message='Not enough data'>"),
            "the server closed the connection mid-response",
            id="cut-mid-stream",
        ),
        pytest.param(TimeoutError(), "no answer in time (timed out)", id="timeout"),
        pytest.param(ValueError("[Errno 5] disk on fire"), "disk on fire", id="errno-prefix-dropped"),
        pytest.param(_Wrapped(), "_ wrapped", id="no-text-class-in-words"),
    ],
)
def test_describe_reads_as_a_sentence_never_a_repr(exc: BaseException, text: str) -> None:
    assert errors.describe(exc).startswith(text)


def test_describe_finds_the_cause_below_a_wrapper() -> None:
    outer = _Wrapped("connect failed")
    outer.__cause__ = OSError(-2, "Name or service not known")
    assert errors.describe(outer) == "its host name does not resolve"
