"""``runback serve``: the API, the executor and the dispatcher in one process.

Start-up order matters: take the data directory's lock, migrate, then hand back whatever the
previous process left claimed (it is dead: the lock proves it), and only then accept requests
and start the workers, so nothing accepted before a crash waits for a lease to expire.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
from collections.abc import Callable

import uvicorn

from runback.core.clock import Clock, SystemClock
from runback.core.urlpolicy import UrlPolicy
from runback.errors import ConfigError
from runback.provider.api.app import create_app
from runback.provider.datadir import DataDirLock, prepare_data_dir
from runback.provider.fetcher import AiohttpFetcher
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import assemble, blob_store
from runback.provider.sender import AiohttpSender
from runback.settings import Settings
from runback.store import Store, open_store

Print = Callable[[str], None]


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a ``ConfigError`` saying why it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host"
        ) from None


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _greet(store: Store, clock: Clock, settings: Settings, url: str, say: Print) -> None:
    organization, created = await store.accounts.ensure_default_organization(now=clock.now())
    allow = ", ".join(settings.callback_allow) or "public addresses only"
    say(f"runback serving {url} (data: {settings.data_dir})")
    say(f"callbacks may reach internal addresses: {allow}")
    if created:
        key = await store.accounts.create_api_key([organization.id], now=clock.now())
        say(
            f"\nCreated organization '{organization.name}' and its first API key. "
            f"It is shown this once only:\n\n    {key}\n\nA first run:\n\n"
            f"    curl -s -X POST {url}/v1/models/runback/echo/runs \\\n"
            f'      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            """      -d '{"input": {"hello": "world"}}'\n"""
        )
    else:
        say(f"another API key: runback keys create --data-dir {settings.data_dir}")


def _ignore_signal(signum: int, frame: object) -> None:
    """uvicorn re-raises the signal that stopped it; by then the shutdown is ours to finish."""


async def serve(settings: Settings, *, registry: ModelRegistry, say: Print = print) -> None:
    """Serve until SIGINT or SIGTERM."""
    data_dir = prepare_data_dir(settings.data_dir)
    url_policy = UrlPolicy.from_allow_list(settings.callback_allow)
    with DataDirLock(data_dir), bind(settings.host, settings.port) as sock:
        async with (
            open_store(
                settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
            ) as store,
            AiohttpSender(max_connections=settings.max_in_flight_deliveries) as sender,
        ):
            clock = SystemClock()
            runtime = await assemble(
                settings,
                store=store,
                sender=sender,
                fetcher=AiohttpFetcher(sender.session, url_policy=url_policy),
                blobs=blob_store(settings),
                registry=registry,
                clock=clock,
                random=random.random,
                public_url=settings.public_url or _url_of(sock),
            )
            executor, dispatcher = runtime.executor, runtime.dispatcher
            await store.deliveries.release_claims(now=clock.now())
            await executor.recover(max_executions=settings.run_max_executions)
            app = create_app(runtime.api)
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    http="httptools",
                    lifespan="off",
                    log_config=None,
                    access_log=settings.access_log,
                    server_header=False,
                )
            )
            await _greet(store, clock, settings, _url_of(sock), say)
            workers = [
                asyncio.create_task(executor.run_forever(), name="executor"),
                asyncio.create_task(dispatcher.run_forever(), name="dispatcher"),
            ]
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, _ignore_signal)
            try:
                await server.serve(sockets=[sock])
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
