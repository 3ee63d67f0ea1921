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
