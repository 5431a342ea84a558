"""The corpus tier: tests marked `corpus` read the shared corpora and skip, with one reason, where the folder
is absent (a bare clone). Every other test owns its inputs under tests/."""

from __future__ import annotations

import pytest

from tests.corpus import missing_corpora

__all__ = ["pytest_runtest_setup"]


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up: some read the corpora
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Skip here rather than with a mark at collection: the summary then groups every corpus skip on one line.
    if item.get_closest_marker("corpus") is not None and (reason := missing_corpora()) is not None:
        pytest.skip(f"corpus tier: {reason}")
