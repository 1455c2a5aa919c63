"""Shared fixtures for the price-source tests: where the shared reference data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

# <repo>/tests/unit/prices/conftest.py -> <repo>/../shared/data (also true in a CI clone).
SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared reference data not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA
