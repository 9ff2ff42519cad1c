"""Fixtures shared by every tier: a real SQLite store on a temporary file, a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runback.settings import sqlite_url
from runback.store import Store, open_store
from runback.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(sqlite_url(tmp_path / "runback.db")) as opened:
        yield opened
