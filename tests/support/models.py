"""Models for tests."""

from __future__ import annotations

import asyncio
from typing import Any

from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry

LONG = "acme/long"


class Long:
    """``acme/long``: starts, says so, and runs until cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.registry = ModelRegistry()
        self.registry.register(LONG, self.run)

    async def run(self, input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        self.started.set()
        await asyncio.Event().wait()
        return {}

    async def wait_started(self) -> None:
        await asyncio.wait_for(self.started.wait(), timeout=5)
