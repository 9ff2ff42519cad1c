"""Fixtures of the end-to-end tier: a data directory, a key, a real server, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

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
