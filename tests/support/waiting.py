"""Waiting on a condition with a deadline: tests never sleep to synchronise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_POLL = 0.01


async def wait_for(
    predicate: Callable[[], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 (a deadline on a condition, not on one await)
    *,
    what: str | None = None,
) -> None:
    """Return once ``predicate()`` is true; raise AssertionError if ``timeout`` s pass first."""

    async def check() -> bool:
        return predicate()

    await eventually(check, timeout, what=what or getattr(predicate, "__name__", None))


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,  # noqa: ASYNC109 (a deadline on a condition, not on one await)
    *,
    what: str | None = None,
) -> None:
    """Return once ``await check()`` is true; raise AssertionError if ``timeout`` s pass first."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            described = what or getattr(check, "__name__", repr(check))
            raise AssertionError(f"condition not met within {timeout:g} s: {described}")
        await asyncio.sleep(_POLL)
