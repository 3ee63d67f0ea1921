"""The image fixture: built once per test run, with the same script as `make image`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.image import containers


@pytest.fixture(scope="session")
def operator_image() -> Iterator[str]:
    """The freshly built operator image. Fails, never skips, when Docker or the build is unavailable."""
    try:
        image = containers.build_image()
    except Exception as exc:
        pytest.fail(f"cannot build the operator image: {exc}", pytrace=False)
    yield image
    containers.remove_session_containers()
