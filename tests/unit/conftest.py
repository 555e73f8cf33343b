"""Fixtures the unit tests of the image store share."""

import pytest

from knarr.images import ImageStore


@pytest.fixture
def store(tmp_path):
    """An image store of its own under the test's tmp dir (test files with another kind
    of `store` define their own, which wins)."""
    s = ImageStore(str(tmp_path / "root"))
    yield s
    s.close()
