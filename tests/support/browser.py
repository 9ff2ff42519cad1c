"""Debian's chromium driven by Playwright, for the dashboards' browser tests.

Chromium missing is a failure, never a skip: a machine without it would pass CI while
testing nothing (``make test`` installs it: ``make chromium``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 10_000


def installed_chromium() -> Path:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: 'make chromium' installs Debian's chromium"
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian chromium."""
    executable = str(installed_chromium())
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        await launched.close()


@asynccontextmanager
async def browser_context(
    browser: Browser, *, javascript: bool = True
) -> AsyncIterator[BrowserContext]:
    """A context of its own (its own cookies), waiting up to ``WAIT_MS`` for what it expects."""
    made = await browser.new_context(java_script_enabled=javascript)
    made.set_default_timeout(WAIT_MS)
    yield made
    await made.close()


@asynccontextmanager
async def logged_in(
    context: BrowserContext, base: str, key: str, heading: str
) -> AsyncIterator[Page]:
    """A page logged in to ``base``'s dashboard with ``key``, on the page titled ``heading``;
    the browser's console must stay free of errors (a script the Content-Security-Policy
    refused, an htmx swap that failed)."""
    opened = await context.new_page()
    errors: list[str] = []
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(opened, base, key, heading)
    yield opened
    assert not errors


async def log_in(page: Page, base: str, key: str, heading: str) -> None:
    await page.goto(f"{base}/dashboard")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name=heading)).to_be_visible()
