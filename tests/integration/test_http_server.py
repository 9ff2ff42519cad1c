"""A serving process in a process of its own: the collector is settled for serving
(start-up's objects frozen, a larger first generation) before it says where it serves."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from runback.http_server import GC_THRESHOLDS

# ``run_process`` serving an app that answers with its own collector's state.
SERVER = textwrap.dedent(
    """
    import asyncio, contextlib, gc, json, sys
    from runback.process import Parts, run_process
    from runback.settings import load_settings

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = json.dumps({"frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    async def nothing():
        return None

    @contextlib.asynccontextmanager
    async def build(place):
        async def greet():
            print(place.url, flush=True)
        yield Parts(app=app, workers=[], take_back=nothing, greet=greet)

    config = load_settings(data_dir=sys.argv[1], port=0).config()
    asyncio.run(run_process(config, build))
    """
)


def test_a_served_process_freezes_its_start_up_and_collects_less_often(tmp_path: Path) -> None:
    command = [sys.executable, "-c", SERVER, str(tmp_path / "data")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            # The socket listens before serving starts: the request waits in its backlog.
            answer = httpx.get(url, timeout=20).json()
        finally:
            process.terminate()
    assert answer["frozen"] > 10_000  # the modules and the app, out of the collector's way
    assert tuple(answer["thresholds"]) == GC_THRESHOLDS
