"""The worker loop: a task that ends while a round is under way makes the loop look again,
rather than sleep out a poll interval on what the round saw before it ended."""

from __future__ import annotations

import asyncio

from runback.work_loop import WorkLoop
from support.waiting import eventually

POLL = 60.0  # the test would hang if the loop slept it out


class _Rounds(WorkLoop):
    """Starts one task in its first round, then (while that task ends) judges there is
    nothing to do; counts its rounds."""

    def __init__(self) -> None:
        super().__init__(capacity=1, poll_interval=POLL)
        self.rounds = 0
        self.task_done = asyncio.Event()

    async def _round(self) -> float:
        self.rounds += 1
        if self.rounds == 1:
            self._spawn(self._work(), name="work")
            await self.task_done.wait()  # the task ends while this round awaits (the database)
            await asyncio.sleep(0)
        return POLL  # nothing waits for room, as far as this round knew

    async def _work(self) -> None:
        self.task_done.set()


async def test_a_task_ending_during_a_round_brings_another_round_at_once() -> None:
    worker = _Rounds()
    loop = asyncio.create_task(worker.run_forever())

    async def looked_again() -> bool:
        return worker.rounds >= 2

    try:
        await eventually(looked_again, timeout=5, what="a second round without the poll")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
