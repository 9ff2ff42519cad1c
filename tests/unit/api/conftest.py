from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock) as client:
        yield client
