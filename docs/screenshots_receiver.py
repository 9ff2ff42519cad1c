"""The receiver's part of ``make screenshots``: ``runback receive`` with demo events, and a
picture of each of its dashboard pages.

Starts ``runback receive`` on a temporary data directory with a handlers module that fails
for one run, serves two output files on loopback (one of them missing), sends it signed
callbacks as runback would, then saves a PNG of its events, an event whose copy and handler
failed, and its expected runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from playwright.async_api import Browser
from screenshot_processes import api_key, loopback, start

from runback.core.signing import generate_secret, signature_headers

_RECEIVING = re.compile(r"runback receiving at (http://[^\s/]+)")
SECRET = generate_secret()

HANDLERS = """
from runback.receiver.handlers import HandlerRegistry, ReceivedEvent

handlers = HandlerRegistry()


@handlers.on("run.completed")
def save_order(event: ReceivedEvent) -> None:
    if event.payload.get("run_id") == "run_7f3a":
        raise RuntimeError("orders database refused the connection")
"""


def _receive(data_dir: Path, log: Path, sender: str) -> tuple[subprocess.Popen[bytes], str]:
    (data_dir.parent / "demo_handlers.py").write_text(HANDLERS)
    # A sender the reconciler could poll: only such a source's runs may be expected.
    config = data_dir.parent / "receive.toml"
    config.write_text(f'[sources.runflow]\nsender_url = "{sender}"\nsender_key = "rb_demo"\n')
    env = {**os.environ, "PYTHONPATH": str(data_dir.parent), "RUNBACK_POLL_INTERVAL": "0.2",
           "RUNBACK_SHUTDOWN_GRACE": "1"}  # fmt: skip
    args = ["receive", "--port", "0", "--data-dir", str(data_dir),
             "--secret", SECRET, "--handlers", "demo_handlers", "--config", str(config),
             "--callback-allow", "127.0.0.0/8"]  # fmt: skip
    return start(args, env=env, log=log, announced=_RECEIVING)


async def _files() -> tuple[web.AppRunner, str]:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16

    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith("/outputs/"):
            return web.Response(body=png, content_type="image/png")
        return web.Response(status=404, text="no such object")

    return await loopback(handle)


async def _demo(base: str, key: str, files: str) -> str:
    """Signed callbacks and an expectation; answers the id of the event that went wrong."""

    def completed(run_id: str, *paths: str, status: str = "succeeded") -> dict[str, Any]:
        outputs = [{"url": f"{files}{path}?X-Amz-Signature=0ff1ce"} for path in paths]
        return {"event": "run.completed", "run_id": run_id, "status": status,
                "output": {"outputs": outputs}}  # fmt: skip

    payloads = [
        completed("run_1c2d", "/outputs/cat.png"),
        {"event": "run.started", "run_id": "run_5e6f", "sequence": 1},
        completed("run_9a0b", status="failed"),
        completed("run_7f3a", "/outputs/dog.png", "/expired/dog-mask.png"),
    ]
    wrong = ""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for n, payload in enumerate(payloads):
            body = orjson.dumps(payload)
            headers = signature_headers(
                body=body, msg_id=f"msg_demo_{n}", timestamp=int(time.time()),
                current=SECRET, active=[SECRET],
            )  # fmt: skip
            headers["Content-Type"] = "application/json"
            answer = await http.post("/webhooks/runflow", content=body, headers=headers)
            answer.raise_for_status()
            wrong = str(answer.json()["event_id"])
        auth = {"Authorization": f"Bearer {key}"}
        expected = await http.post("/v1/expected", headers=auth,
                                   json={"source": "runflow", "run_id": "run_2b4d"})  # fmt: skip
        expected.raise_for_status()

        async def settled() -> bool:
            event = (await http.get(f"/v1/inbox/{wrong}", headers=auth)).json()
            return event["handler"]["attempts"] >= 1 and any(
                c["attempts"] >= 1 for c in event["copies"] if c["state"] != "copied"
            )

        deadline = time.monotonic() + 30
        while not await settled():
            if time.monotonic() > deadline:
                raise SystemExit("demo events not handled in time")
            await asyncio.sleep(0.1)
    return wrong


async def receiver_pictures(browser: Browser, work: Path, out: Path, first: int) -> list[Path]:
    """The receiver's pages as ``<first>-…png`` onwards, into ``out``."""
    data_dir = work / "inbox"
    key = api_key(data_dir)
    runner, files = await _files()
    process, base = _receive(data_dir, work / "receive.log", files)
    saved: list[Path] = []
    try:
        wrong = await _demo(base, key, files)
        page = await browser.new_page(viewport={"width": 1280, "height": 860})

        async def shot(name: str, path: str | None = None) -> None:
            if path is not None:
                await page.goto(base + "/dashboard" + path)
            await page.wait_for_load_state("networkidle")
            target = out / f"{first + len(saved):02d}-{name}.png"
            await page.screenshot(path=str(target), full_page=True)
            saved.append(target)

        await page.goto(base + "/dashboard")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/dashboard/events")
        await shot("receiver-events")
        await shot("receiver-event", f"/events/{wrong}")
        await shot("receiver-expected", "/expected")
        await page.close()
    finally:
        await runner.cleanup()
        process.terminate()
        process.wait(timeout=30)
    return saved
