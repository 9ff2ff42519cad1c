"""``serve_app`` in a process of its own: the collector is settled for serving (start-up's
objects frozen, a larger first generation) before the first request is answered."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from runback.http_server import GC_THRESHOLDS

# A process serving an app that answers with its own collector's state.
SERVER = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    from runback.http_server import bind, serve_app, url_of

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = json.dumps({"frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    sock = bind("127.0.0.1", 0)
    print(url_of(sock), flush=True)
    asyncio.run(serve_app(app, sock, access_log=False, workers=[], grace=1))
    """
)


def test_a_served_process_freezes_its_start_up_and_collects_less_often() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            # The socket listens before serving starts: the request waits in its backlog.
            answer = httpx.get(url, timeout=20).json()
        finally:
            process.terminate()
    assert answer["frozen"] > 10_000  # the modules and the app, out of the collector's way
    assert tuple(answer["thresholds"]) == GC_THRESHOLDS
