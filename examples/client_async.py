"""Follow a run event by event on its stream: the asyncio client.

RUNBACK_URL=http://127.0.0.1:8000 RUNBACK_KEY=rb_... python examples/client_async.py
"""

import asyncio
import os

import runback


async def main() -> None:
    async with runback.AsyncClient(os.environ["RUNBACK_URL"], os.environ["RUNBACK_KEY"]) as client:
        run = await client.runs.create(
            "runback/sleep", {"seconds": 1, "steps": 4}, events=["start", "logs", "completed"]
        )
        async for event in client.runs.events(run.id):  # ends with the run's end
            print(event.sequence, event.event, event.data.get("progress"))
        ended = await client.runs.get(run.id)
        print(ended.status_code, ended.output, ended.duration_ms)


asyncio.run(main())
