"""The receiver's dashboard in a real browser: Debian's chromium, driven by Playwright,
against the receive app served by uvicorn on loopback, with signed callbacks sent to it over
HTTP and its output files fetched from a loopback file server.

The app runs in this test's event loop (not as ``runback receive``) so that its copier and
handler runner are stepped by the test, on a manual clock: a handler's hour of retries passes
in a moment, and a failed handler can be replayed from its page. One receiver, one file
server and one browser serve the whole module; each test has its own browser context.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import uvicorn
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect
from starlette.types import ASGIApp

from runback.core.signing import generate_secret
from runback.http_server import bind, url_of
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry, ReceivedEvent
from runback.store import Store, open_store, sqlite_url
from runback.testing import ManualClock
from support.browser import browser_context, log_in, logged_in
from support.inbox import Inbox, inbox_client, signed
from support.receivers import LoopbackReceiver, answer
from support.waiting import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = generate_secret()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Flaky:
    """A handler that raises while ``broken``."""

    def __init__(self) -> None:
        self.broken = False

    async def __call__(self, event: ReceivedEvent) -> None:
        if self.broken:
            raise RuntimeError("the orders database is down")


@asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a port of its own) in this event loop."""
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started, what="uvicorn started")
        yield url_of(sock)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(scope="module")
def flaky() -> Flaky:
    return Flaky()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def files() -> AsyncIterator[LoopbackReceiver]:
    """Serves a PNG at ``/ok/...``; 404 elsewhere."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/ok/"):
            return await answer(200, PNG, {"Content-Type": "image/png"})(request)
        return await answer(404, b"no such file")(request)

    async with LoopbackReceiver(handle) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    path = tmp_path_factory.mktemp("receiver-dashboard") / "inbox.db"
    async with open_store(sqlite_url(path)) as opened:
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box(store: Store, flaky: Flaky) -> AsyncIterator[Inbox]:
    # The verifier judges webhook-timestamp by this clock: start it at the wall clock's time.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    handlers = HandlerRegistry()
    handlers.on("run.completed")(flaky)
    config = ReceiveConfig(global_secrets=(SECRET,))
    async with inbox_client(store, clock, config=config, handlers=handlers) as inbox:
        yield inbox


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base(box: Inbox) -> AsyncIterator[str]:
    assert box.app is not None
    async with served(box.app) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext, base: str, box: Inbox) -> AsyncIterator[Page]:
    async with logged_in(context, base, box.key, "Received events") as opened:
        yield opened


async def send(box: Inbox, base: str, payload: dict[str, Any], *, msg_id: str) -> str:
    """Post ``payload`` signed with the receiver's secret to its ``/webhooks/runflow``."""
    body = orjson.dumps(payload)
    headers = signed(body, SECRET, clock=box.clock, msg_id=msg_id)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{base}/webhooks/runflow", content=body, headers=headers)
    assert response.status_code == 200, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def completed(run_id: str, *urls: str, status: str = "succeeded") -> dict[str, Any]:
    outputs = [{"url": url} for url in urls]
    return {
        "event": "run.completed",
        "run_id": run_id,
        "status": status,
        "output": {"outputs": outputs},
    }


def row_of(page: Page, event_id: str) -> Any:
    return page.locator("#events-table tr").filter(
        has=page.locator(f'a[href$="/events/{event_id}"]')
    )


async def test_a_signed_callback_shows_up_live_with_its_copies_and_handler_outcome(
    page: Page, base: str, box: Inbox, files: LoopbackReceiver
) -> None:
    urls = (files.url_for("/ok/cat.png"), files.url_for("/gone/dog.png"))
    event_id = await send(box, base, completed("run_live", *urls), msg_id="msg_live")
    await box.copier.copy_due()
    await box.runner.handle_due()

    # The list polls its table (htmx): the new event appears without a reload.
    row = row_of(page, event_id)
    await expect(row).to_contain_text("run_live")
    await expect(row).to_contain_text("copied 1")
    await expect(row).to_contain_text("pending 1")
    await row.get_by_role("link").click()

    await expect(page.get_by_role("heading", name=f"Event {event_id}")).to_be_visible()
    await expect(page.locator("td.verification")).to_contain_text("signature verified")
    copies = page.locator("tr.copy")
    await expect(copies.filter(has_text="cat.png")).to_contain_text("copied")
    missing = copies.filter(has_text="dog.png")
    await expect(missing).to_contain_text("pending")
    await expect(missing).to_contain_text("404")
    await expect(page.locator("#handler-state")).to_have_text("succeeded")
    await expect(page.locator("#handler-attempts")).to_have_text("1")


async def test_a_failed_handler_is_shown_failed_and_replayed_from_its_page(
    page: Page, base: str, box: Inbox, flaky: Flaky
) -> None:
    flaky.broken = True
    event_id = await send(box, base, completed("run_broken"), msg_id="msg_broken")
    for _ in range(20):  # every retry of the handler's schedule, an hour in a moment
        await box.runner.handle_due()
        box.clock.advance(700)
    await page.get_by_label("Handlers").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await row_of(page, event_id).get_by_role("link").click()
    await expect(page.locator("#handler-state")).to_have_text("failed")
    await expect(page.locator("#handler-error")).to_contain_text("the orders database is down")
    await expect(page.locator("#handler-attempts")).to_have_text("13")

    flaky.broken = False
    await page.get_by_role("button", name="Replay event").click()

    await expect(page.get_by_role("status")).to_contain_text("replayed")
    await expect(page.locator("#handler-state")).to_have_text("pending")
    await box.runner.handle_due()
    # The event page polls while its handlers are pending: the outcome arrives by itself.
    await expect(page.locator("#handler-state")).to_have_text("succeeded")
    await expect(page.locator("#handler-attempts")).to_have_text("1")


async def test_the_events_list_filters_by_status(page: Page, base: str, box: Inbox) -> None:
    failed = await send(box, base, completed("run_f", status="failed"), msg_id="msg_f")
    fine = await send(box, base, completed("run_s"), msg_id="msg_s")

    await page.get_by_label("Status").fill("failed")
    await page.get_by_role("button", name="Filter").click()

    await expect(row_of(page, failed)).to_be_visible()
    await expect(row_of(page, fine)).to_have_count(0)
    assert "status=failed" in page.url


async def test_a_replay_without_the_csrf_token_is_refused(
    page: Page, base: str, box: Inbox
) -> None:
    event_id = await send(box, base, completed("run_forged"), msg_id="msg_forged")

    # The browser's own cookies without the form's token: what a forged form would send.
    refused = await page.request.post(f"{base}/dashboard/events/{event_id}/replay", form={})

    assert refused.status == 403
    assert "<code>csrf_token</code>" in await refused.text()


async def test_the_pages_work_without_javascript(
    browser: Browser, base: str, box: Inbox, flaky: Flaky
) -> None:
    flaky.broken = True
    event_id = await send(box, base, completed("run_plain"), msg_id="msg_plain")
    await box.runner.handle_due()
    flaky.broken = False
    async with browser_context(browser, javascript=False) as context:
        page = await context.new_page()
        await log_in(page, base, box.key, "Received events")
        await row_of(page, event_id).get_by_role("link").click()
        await expect(page.locator("#handler-error")).to_contain_text("orders database")

        await page.get_by_role("button", name="Replay event").click()  # a plain form POST

        await expect(page.get_by_role("status")).to_contain_text("replayed")
        await box.runner.handle_due()
        await page.get_by_role("link", name="Refresh").click()
        await expect(page.locator("#handler-state")).to_have_text("succeeded")
        await page.get_by_role("link", name="Expected runs").click()
        await expect(page.get_by_role("heading", name="Expected runs")).to_be_visible()


async def test_an_event_opens_from_the_keyboard_alone(page: Page, base: str, box: Inbox) -> None:
    event_id = await send(box, base, completed("run_keys"), msg_id="msg_keys")
    await page.reload()

    for _ in range(40):  # the filters, then the table's links in document order
        await page.keyboard.press("Tab")
        href = await page.evaluate("document.activeElement.getAttribute('href') || ''")
        if href.endswith(event_id):
            break
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("heading", name=f"Event {event_id}")).to_be_visible()
