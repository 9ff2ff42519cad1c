"""``make screenshots``: a picture of each dashboard page, into ``docs/screenshots/``.

Starts ``runback serve`` on a temporary data directory and a receiver on loopback (``/ok``
answers 200, ``/down`` 500), makes demo data through the API (runs that succeed, fail, run
on, make an image; a batch; a callback that fails; a recovery; a second secret), then logs
in with Debian's chromium (Playwright, never a downloaded browser) and saves one PNG a page.
Not part of ``make test``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from playwright.async_api import Page, async_playwright
from screenshot_processes import api_key, loopback, start
from screenshots_receiver import receiver_pictures

OUT = Path(__file__).parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
_SERVING = re.compile(r"runback serving (http://[^\s/]+)")


def _serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "RUNBACK_RETRY_DELAYS": "100ms",
        "RUNBACK_RETRY_JITTER": "0",
        "RUNBACK_POLL_INTERVAL": "0.2",
        "RUNBACK_SHUTDOWN_GRACE": "1",
    }
    args = ["serve", "--port", "0", "--data-dir", str(data_dir), "--callback-allow", "127.0.0.0/8"]
    return start(args, env=env, log=log, announced=_SERVING)


async def _receiver() -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/down":
            return web.Response(status=500, text="receiver is down for maintenance")
        return web.Response(status=200, text='{"received": true}')

    return await loopback(handle)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo data not ready: {what}")
        await asyncio.sleep(0.1)


async def _demo(api: httpx.AsyncClient, hooks: str) -> dict[str, str]:
    """Demo data; answers the ids the pictures show."""

    async def submit(model: str, body: dict[str, Any]) -> str:
        made = await api.post(f"/v1/models/{model}/runs", json=body)
        made.raise_for_status()
        return str(made.json()["id"])

    ok, down = f"{hooks}/ok", f"{hooks}/down"
    for n in range(3):
        await submit(
            "runback/echo",
            {
                "input": {"prompt": f"hello {n}"},
                "callback_url": ok,
                "client_ref": f"order-{1000 + n}",
            },
        )
    thumb = {"input": {"width": 320, "height": 200}, "callback_url": ok, "client_ref": "thumb-1"}
    image = await submit("runback/thumbnail", thumb)
    await submit("runback/fail", {"input": {"message": "out of GPU memory"}, "callback_url": ok})
    unheard = {"input": {"prompt": "nobody listens"}, "callback_url": down, "client_ref": "o-2"}
    failed = await submit("runback/echo", unheard)
    await submit("runback/sleep", {"input": {"seconds": 600}, "client_ref": "long-job"})
    items = {"input": [{"n": 1}, {"n": 2}, {"n": 3}], "callback_url": ok}
    batch = await api.post("/v1/models/runback/echo/batches", json=items)
    batch.raise_for_status()
    await api.post("/v1/callback-secrets", json={"label": "rotation 2026-12"})

    async def callback_failed() -> bool:
        found = (await api.get(f"/v1/runs/{failed}/callback")).json()
        return bool(found) and found[0]["status_code"] == "failed"

    async def image_done() -> bool:
        status: str = (await api.get(f"/v1/runs/{image}")).json()["status_code"]
        return status == "succeeded"

    await _until(callback_failed, "a failed callback")
    await _until(image_done, "the thumbnail")
    now = datetime.now(UTC)
    recovery = await api.post(
        "/v1/callback-deliveries/recoveries",
        json={
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
        },
    )
    recovery.raise_for_status()
    return {
        "image": image,
        "failed": failed,
        "batch": str(batch.json()["id"]),
        "recovery": str(recovery.json()["id"]),
    }


async def _pictures(base: str, key: str, ids: dict[str, str], work: Path) -> list[Path]:
    saved: list[Path] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page: Page = await browser.new_page(viewport={"width": 1280, "height": 860})

        async def shot(name: str, path: str | None = None) -> None:
            if path is not None:
                await page.goto(base + "/dashboard" + path)
            await page.wait_for_load_state("networkidle")
            target = OUT / f"{len(saved) + 1:02d}-{name}.png"
            await page.screenshot(path=str(target), full_page=True)
            saved.append(target)

        await shot("login", "/login")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/dashboard/runs")
        await shot("runs")
        await shot("run-with-image", f"/runs/{ids['image']}")
        await shot("run-failed-callback", f"/runs/{ids['failed']}")
        await shot("batches", "/batches")
        await shot("batch", f"/batches/{ids['batch']}")
        await shot("destinations", "/destinations")
        await shot("secrets", "/secrets")
        await page.get_by_label("Label").fill("made in the dashboard")
        await page.get_by_role("button", name="Create secret").click()
        await shot("secret-created")
        await shot("callbacks", "/callbacks")
        await shot("recovery", f"/recoveries/{ids['recovery']}")
        saved += await receiver_pictures(browser, work, OUT, len(saved) + 1)
        await browser.close()
    return saved


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        key = api_key(data_dir)
        process, base = _serve(data_dir, Path(tmp) / "serve.log")
        runner, hooks = await _receiver()
        try:
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10
            ) as api:
                ids = await _demo(api, hooks)
            for path in await _pictures(base, key, ids, Path(tmp)):
                print(path.relative_to(OUT.parent.parent))
        finally:
            await runner.cleanup()
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
