"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a real
``runback serve`` and a real receiver on loopback.

One server, one receiver and one browser serve the whole module; each test opens its own
browser context (its own cookies). Chromium missing is a failure, never a skip: ``make test``
installs it (``make chromium``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from support.browser import browser_context, log_in, logged_in
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard") / "data"


@pytest.fixture(scope="module")
def key(data_dir: Path) -> str:
    made = cli("keys", "create", "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def server(data_dir: Path, key: str) -> Iterator[ServeProcess]:
    # One retry 100 ms after the first attempt: a failing receiver fails a delivery at once.
    env = {"RUNBACK_RETRY_DELAYS": "100ms", "RUNBACK_RETRY_JITTER": "0"}
    with ServeProcess(data_dir, env=env) as process:
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[LoopbackReceiver]:
    async with LoopbackReceiver(answer(500, "receiver is down")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(server: ServeProcess, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext, server: ServeProcess, key: str) -> AsyncIterator[Page]:
    async with logged_in(context, server.url, key, "Runs") as opened:
        yield opened


async def submit(api: httpx.AsyncClient, body: dict[str, Any], model: str = "runback/echo") -> str:
    created = await api.post(f"/v1/models/{model}/runs", json=body)
    assert created.status_code == 201, created.text
    run_id: str = created.json()["id"]
    return run_id


async def callback_statuses(api: httpx.AsyncClient, run_id: str) -> list[str]:
    found = await api.get(f"/v1/runs/{run_id}/callback")
    return [delivery["status_code"] for delivery in found.json()]


async def test_a_failed_delivery_is_found_redelivered_and_seen_to_succeed(
    page: Page, server: ServeProcess, api: httpx.AsyncClient, receiver: LoopbackReceiver
) -> None:
    receiver.handler = answer(500, "receiver is down")
    hook = receiver.url_for("/hook")
    run_id = await submit(api, {"input": {"n": 1}, "callback_url": hook, "client_ref": "red-1"})

    async def failed() -> bool:
        return await callback_statuses(api, run_id) == ["failed"]

    await eventually(failed, what="the callback failed every attempt")

    await page.get_by_label("client_ref").fill("red-1")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("link", name=run_id).click()
    delivery = page.locator("article.delivery")
    await expect(delivery).to_contain_text("failed")
    await expect(delivery).to_contain_text("receiver is down")  # the response excerpt
    await expect(delivery).to_contain_text("http_5xx")  # the failure class

    receiver.handler = answer(200, "thanks")
    await delivery.get_by_role("button", name="Redeliver").click()

    await expect(page.get_by_role("status")).to_contain_text("is queued again")
    # The page polls its deliveries (htmx) while one is in flight: no reload needed.
    newest = page.locator("article.delivery").first
    await expect(newest).to_contain_text("succeeded")
    await expect(newest).to_contain_text("thanks")
    assert await callback_statuses(api, run_id) == ["failed", "succeeded"]


async def test_a_running_run_is_cancelled_from_its_page(
    page: Page, server: ServeProcess, api: httpx.AsyncClient
) -> None:
    run_id = await submit(api, {"input": {"seconds": 60}}, model="runback/sleep")

    await page.goto(f"{server.url}/dashboard/runs/{run_id}")
    await page.get_by_role("button", name="Cancel run").click()

    await expect(page.get_by_role("status")).to_contain_text(f"Run {run_id} is canceled.")
    await expect(page.locator("#run-status")).to_have_text("canceled")
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


async def test_a_new_secret_is_shown_once(page: Page, server: ServeProcess) -> None:
    await page.get_by_role("link", name="Secrets").click()
    await page.get_by_label("Label").fill("browser-made")
    await page.get_by_role("button", name="Create secret").click()

    shown = await page.locator("#created-secret").inner_text()
    assert shown.startswith("whsec_")
    await page.get_by_role("link", name="Done").click()
    await expect(page.get_by_role("cell", name="browser-made")).to_be_visible()
    assert shown not in await page.content()


async def test_the_runs_list_filters_by_status_and_client_ref(
    page: Page, server: ServeProcess, api: httpx.AsyncClient
) -> None:
    ended = await submit(api, {"input": {}, "client_ref": "filter-a"})
    failing = await submit(
        api, {"input": {"message": "no"}, "client_ref": "filter-a"}, "runback/fail"
    )

    async def both_ended() -> bool:
        statuses = [
            (await api.get(f"/v1/runs/{r}")).json()["status_code"] for r in (ended, failing)
        ]
        return statuses == ["succeeded", "failed"]

    await eventually(both_ended, what="both runs ended")
    await page.get_by_label("client_ref").fill("filter-a")
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()

    table = page.locator("#runs-table")
    await expect(table.get_by_role("link", name=failing)).to_be_visible()
    await expect(table.get_by_role("link", name=ended)).to_have_count(0)
    assert "status=failed" in page.url


async def test_logout_ends_the_session(page: Page, server: ServeProcess) -> None:
    await page.get_by_role("button", name="Log out").click()

    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("logged out")
    await page.goto(f"{server.url}/dashboard/runs")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_a_post_without_the_csrf_token_is_refused(page: Page, server: ServeProcess) -> None:
    # The browser's own cookies, without the form's token: what a forged form would send.
    answer_ = await page.request.post(f"{server.url}/dashboard/logout", form={"x": "1"})

    assert answer_.status == 403
    assert "<code>csrf_token</code>" in await answer_.text()
    await page.reload()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def test_the_session_cookie_is_httponly_strict_and_not_the_key(
    page: Page, context: BrowserContext, key: str
) -> None:
    [cookie] = [c for c in await context.cookies() if c["name"] == "runback_session"]

    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # served over http on loopback
    assert cookie["path"] == "/dashboard"
    assert key not in cookie["value"]
    assert await page.evaluate("document.cookie") == ""  # no script reads it


async def test_logging_in_works_from_the_keyboard_alone(
    context: BrowserContext, server: ServeProcess, key: str
) -> None:
    page = await context.new_page()
    await page.goto(f"{server.url}/dashboard/login")

    await expect(page.get_by_label("API key")).to_be_focused()  # autofocus: no click needed
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    await page.keyboard.press("Tab")  # the first stop is the skip link
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"


async def test_pages_work_without_javascript(
    browser: Browser, server: ServeProcess, api: httpx.AsyncClient, key: str
) -> None:
    async with browser_context(browser, javascript=False) as context:
        page = await context.new_page()
        await log_in(page, server.url, key, "Runs")
        run_id = await submit(api, {"input": {"plain": True}})
        await page.get_by_role("link", name="Refresh").click()
        await page.get_by_role("link", name=run_id).click()
        await expect(page.get_by_role("heading", name=re.compile("Input"))).to_be_visible()
