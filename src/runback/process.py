"""One place that wires a process: ``serve``, ``api``, ``worker`` and ``receive`` all start here.

Start-up order matters: take the data directory's lock (when the process owns it), bind the
port, open (and migrate) the store, build the service's parts, hand back what a dead
predecessor left claimed (the lock proves it is dead), and only then accept requests and
start the workers, so nothing accepted before a crash waits for a lease to expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from dataclasses import dataclass, field

from starlette.types import ASGIApp

from runback.config import Config
from runback.datadir import DataDirLock, prepare_data_dir
from runback.http_server import bind, serve_app, settle_collector, url_of
from runback.store import Store, open_database
from runback.work_loop import WorkLoop


@dataclass(frozen=True, slots=True)
class Place:
    """What a service is built on: the open store, and where the process listens."""

    store: Store
    url: str
    """The base URL of the bound socket."""
    owner: bool
    """Whether this process alone uses the store (SQLite, data directory locked): it takes
    back a predecessor's claims at once, and has no other process to tell of new work."""


@dataclass(frozen=True, slots=True)
class Parts:
    """A service, built: its app, its loops, and what it does around serving."""

    app: ASGIApp
    workers: Sequence[WorkLoop]
    take_back: Callable[[], Awaitable[object]]
    """Hand back every claim the previous owner of the store left (run only by an owner)."""
    greet: Callable[[], Awaitable[None]]
    """Say where the process serves (and, on a first start, the keys it made)."""
    beside: Sequence[Callable[[], Awaitable[None]]] = field(default=())
    """Tasks that run while the process serves and are cancelled when it stops."""


Build = Callable[[Place], AbstractAsyncContextManager[Parts]]


async def run_process(config: Config, build: Build, *, may_own: bool = True) -> None:
    """Serve what ``build`` makes until SIGINT or SIGTERM.

    On SQLite a process that ``may_own`` (``serve``, ``receive``) owns its data directory;
    otherwise (``api``/``worker`` processes, or PostgreSQL) processes share the database and
    take back a dead one's work when its leases expire.
    """
    server = config.server
    directory = prepare_data_dir(server.data_dir)
    owner = may_own and config.database.is_sqlite
    owning: AbstractContextManager[object] = DataDirLock(directory) if owner else nullcontext()
    with owning, bind(server.host, server.port) as sock:
        async with (
            open_database(config.database) as store,
            build(Place(store, url_of(sock), owner)) as parts,
        ):
            if owner:
                await parts.take_back()
            # Before the greeting: a SIGTERM sent on it must find uvicorn's handlers, not a
            # collection of the whole heap under way.
            settle_collector()
            await parts.greet()
            async with _beside(parts.beside):
                await serve_app(
                    parts.app,
                    sock,
                    access_log=server.access_log,
                    workers=parts.workers,
                    grace=server.shutdown_grace,
                )


@asynccontextmanager
async def _beside(jobs: Sequence[Callable[[], Awaitable[None]]]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(job()) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
