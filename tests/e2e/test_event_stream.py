"""A run's live stream across processes: ``runback worker`` runs the model, ``runback api``
streams its events (Server-Sent Events) to a real HTTP client, which disconnects halfway
and resumes with ``Last-Event-ID``; on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from support.cluster import Cluster, database_env

Message = dict[str, str]


@pytest.fixture(params=["sqlite", "postgresql"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    async with database_env(request.param) as database:
        yield {"RUNBACK_POLL_INTERVAL": "0.2", "RUNBACK_EVENT_INTERVAL": "0.2", **database}


@pytest.fixture
def cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[Cluster]:
    with ExitStack() as stack:
        cluster = Cluster(tmp_path, env, stack)
        cluster.add_worker()
        yield cluster


async def _read(
    client: httpx.AsyncClient, run_id: str, *, last_id: str | None = None, stop_after: int = 0
) -> list[Message]:
    """The stream's messages: all of them, or the first ``stop_after``, then hang up."""
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    messages: list[Message] = []
    fields: Message = {}
    async with client.stream("GET", f"/v1/runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                if not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
                continue
            if "event" in fields:
                messages.append(fields)
                if len(messages) == stop_after:
                    break  # the client goes away mid-run
            fields = {}
    return messages


@pytest.mark.timeout(120)
async def test_the_stream_is_read_to_the_end_across_a_reconnect(cluster: Cluster) -> None:
    async with cluster.client() as client:
        made = await client.post(
            "/v1/models/runback/sleep/runs",
            json={
                "input": {"seconds": 2, "steps": 20},
                "events": ["start", "output", "logs", "completed"],
            },
        )
        assert made.status_code == 201, made.text
        run_id = made.json()["id"]

        first = await _read(client, run_id, stop_after=2)
        rest = await _read(client, run_id, last_id=first[-1]["id"])
        ended = (await client.get(f"/v1/runs/{run_id}")).json()

    messages = first + rest
    ids = [int(m["id"]) for m in messages]
    assert ids == list(range(1, len(ids) + 1))  # none lost, none twice, in order
    assert messages[0]["event"] == "run.started"
    assert messages[-1]["event"] == "run.completed"
    assert all(m["event"] == "run.logs" for m in messages[1:-1])
    assert len(messages) >= 4  # it talked while it worked
    last = orjson.loads(messages[-1]["data"])
    assert last["sequence"] == ids[-1] == ended["event_sequence"]
    assert orjson.loads(messages[-2]["data"])["logs"].endswith("step 20 of 20")
