"""Group commit: items submitted together are committed together; each gets its own result."""

from __future__ import annotations

import asyncio

import pytest

from runback.batching import GroupCommit


async def test_items_submitted_while_a_commit_runs_share_the_next_one() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()
    started = asyncio.Event()

    async def commit(items: list[int]) -> list[int]:
        batches.append(items)
        started.set()
        await gate.wait()
        return [item * 10 for item in items]

    group: GroupCommit[int, int] = GroupCommit(commit)
    first = asyncio.create_task(group.submit(0))
    await started.wait()  # the first commit is under way
    rest = [asyncio.create_task(group.submit(n)) for n in range(1, 6)]
    gate.set()

    assert await first == 0
    assert [await task for task in rest] == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_commit_fails_every_item_of_its_batch_only() -> None:
    calls = 0

    async def commit(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return [f"kept {item}" for item in items]

    group: GroupCommit[str, str] = GroupCommit(commit)
    with pytest.raises(RuntimeError, match="disk full"):
        await group.submit("a")
    assert await group.submit("b") == "kept b"


async def test_one_bad_item_does_not_fail_its_batch_neighbours() -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def commit(items: list[int]) -> list[int]:
        started.set()
        await gate.wait()
        if 13 in items:
            raise ValueError("13 violates a constraint")
        return items

    group: GroupCommit[int, int] = GroupCommit(commit)
    first = asyncio.create_task(group.submit(1))
    await started.wait()
    batch = [asyncio.create_task(group.submit(n)) for n in (12, 13, 14)]
    gate.set()

    assert await first == 1
    assert await batch[0] == 12
    with pytest.raises(ValueError, match="13"):
        await batch[1]
    assert await batch[2] == 14


async def test_batches_are_capped() -> None:
    batches: list[int] = []

    async def commit(items: list[int]) -> list[None] | None:
        batches.append(len(items))
        return None

    group: GroupCommit[int, None] = GroupCommit(commit, max_batch=3)
    await asyncio.gather(*(_submitted(group, n) for n in range(7)))

    assert max(batches) <= 3
    assert sum(batches) == 7


async def _submitted(group: GroupCommit[int, None], item: int) -> None:
    await group.submit(item)
