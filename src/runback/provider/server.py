"""``runback serve``: the API, the executor and the dispatcher in one process.

Start-up order matters: take the data directory's lock, migrate, then hand back whatever the
previous process left claimed (it is dead: the lock proves it), and only then accept requests
and start the workers, so nothing accepted before a crash waits for a lease to expire.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from runback.core.clock import Clock, SystemClock
from runback.core.urlpolicy import UrlPolicy
from runback.datadir import DataDirLock, prepare_data_dir
from runback.http_server import bind, serve_app, url_of
from runback.provider.api.app import create_app
from runback.provider.fetcher import AiohttpFetcher
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import assemble, blob_store
from runback.provider.sender import AiohttpSender
from runback.settings import Settings
from runback.store import Store, open_store

Print = Callable[[str], None]


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
                public_url=settings.public_url or url_of(sock),
            )
            await store.deliveries.release_claims(now=clock.now())
            await runtime.executor.recover(max_executions=settings.run_max_executions)
            app = create_app(runtime.api)
            await _greet(store, clock, settings, url_of(sock), say)
            await serve_app(
                app,
                sock,
                access_log=settings.access_log,
                workers=[runtime.executor, runtime.dispatcher],
            )
