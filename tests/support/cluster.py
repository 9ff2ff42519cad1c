"""A scaled-out runback: one ``runback api`` and ``runback worker`` processes, as real
subprocesses on one database, sharing one files directory (one host)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx

from support.process import ServeProcess, cli
from support.s3 import free_port

POSTGRES_URL = os.environ.get("RUNBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for a cluster's processes, dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        await admin.execute(f"DROP SCHEMA {name} CASCADE")
        await admin.close()


@asynccontextmanager
async def database_env(backend: str) -> AsyncIterator[dict[str, str]]:
    """The variables that put a cluster on ``backend``: the SQLite file of the data
    directory its processes share, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield {}
        return
    async with postgres_schema() as schema:
        yield {"RUNBACK_DATABASE_URL": POSTGRES_URL, "RUNBACK_DATABASE_SCHEMA": schema}


class Cluster:
    """An API process and workers on one database: a PostgreSQL schema, or (without
    ``RUNBACK_DATABASE_URL``) the SQLite file of the data directory they share."""

    def __init__(self, tmp_path: Path, env: dict[str, str], stack: ExitStack) -> None:
        self._tmp = tmp_path
        self._env = env
        self._stack = stack
        made = cli("keys", "create", "--data-dir", str(tmp_path / "shared"), env=env)
        assert made.returncode == 0, made.stderr
        self.key = made.stdout.strip()
        # The workers' output URLs point at the API, whose port is chosen first; every
        # process shares one files directory (one host).
        self._api_port = free_port()
        self._env = {
            **env,
            "RUNBACK_PUBLIC_URL": f"http://127.0.0.1:{self._api_port}",
            "RUNBACK_FILES_SHARED": "true",
        }
        self.api = stack.enter_context(self._process("api", "api", port=self._api_port))
        self.workers: list[ServeProcess] = []

    def _process(self, command: str, name: str, port: int = 0) -> ServeProcess:
        shared = self._tmp / "shared"
        return ServeProcess(shared, command=command, args=(), env=self._env, port=port, name=name)

    def add_worker(self) -> ServeProcess:
        worker = self._stack.enter_context(self._process("worker", f"worker{len(self.workers)}"))
        self.workers.append(worker)
        return worker

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )
