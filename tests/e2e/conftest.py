"""Fixtures of the end-to-end tier: a data directory, a key, a real server, a client; for the
dashboards' browser tests, one chromium per module and a context per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext

from support.browser import browser_context, chromium
from support.process import ServeProcess, cli


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def key(data_dir: Path) -> str:
    """A key made with `runback keys create` before the server ever ran."""
    made = cli("keys", "create", "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture
def server(data_dir: Path, key: str) -> Iterator[ServeProcess]:
    with ServeProcess(data_dir) as process:
        yield process


@pytest.fixture
async def client(server: ServeProcess, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as http:
        yield http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with browser_context(browser) as made:
        yield made
