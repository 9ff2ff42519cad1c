"""``runback serve``: the API, the executor and the dispatcher in one process.

Start-up order matters: take the data directory's lock, migrate, then hand back whatever the
previous process left claimed (it is dead: the lock proves it), and only then accept requests
and start the workers, so nothing accepted before a crash waits for a lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from runback.core.clock import Clock, SystemClock
from runback.core.sealing import MasterKeys
from runback.core.signing import new_callback_secret
from runback.core.urlpolicy import UrlPolicy
from runback.datadir import DataDirLock, prepare_data_dir
from runback.errors import ConfigError
from runback.http_server import bind, serve_app, url_of
from runback.outbound.sender import AiohttpSender
from runback.provider.api.app import create_app
from runback.provider.fetcher import AiohttpFetcher
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import Runtime, assemble, blob_store
from runback.pruner import Pruner
from runback.settings import Settings
from runback.store import Store, check_schema, open_store
from runback.store.database import database_url
from runback.web.app import base_app
from runback.worker import Worker

Print = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Roles:
    """What one process does: answer the API, execute runs, deliver callbacks."""

    api: bool = True
    executor: bool = True
    dispatcher: bool = True

    @property
    def everything(self) -> bool:
        return self.api and self.executor and self.dispatcher

    def describe(self) -> str:
        names = [n for n, on in (("api", self.api), ("executor", self.executor),
                                 ("dispatcher", self.dispatcher)) if on]  # fmt: skip
        return ", ".join(names)


async def _greet(
    store: Store, clock: Clock, settings: Settings, url: str, roles: Roles, say: Print
) -> None:
    allow = ", ".join(settings.callback_allow) or "public addresses only"
    say(f"runback serving {url} ({roles.describe()}; data: {settings.data_dir.resolve()})")
    say(f"callbacks may reach internal addresses: {allow}")
    if not roles.api:
        return
    organization, created = await store.accounts.ensure_default_organization(now=clock.now())
    if created:
        now = clock.now()
        key = await store.accounts.create_api_key([organization.id], now=now)
        secret = await store.secrets.create(
            new_callback_secret(organization.id, label="first", now=now)
        )
        say(
            f"\nCreated organization '{organization.name}', its first API key and the secret "
            "that signs its callbacks. Both are shown this once only:\n\n"
            f"    API key:         {key}\n"
            f"    signing secret:  {secret.secret}\n\n"
            "Receivers verify Runflow-Signature and webhook-signature with the secret "
            "(examples/receiver_fastapi.py reads it from RUNBACK_SECRET). A first run:\n\n"
            f"    curl -s -X POST {url}/v1/models/runback/echo/runs \\\n"
            f'      -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            """      -d '{"input": {"hello": "world"}}'\n"""
        )
    else:
        runback = _runback_command()
        say(f"another API key: {runback} keys create --data-dir {settings.data_dir}")


def _runback_command() -> str:
    """How to call this runback from a shell: by name when it is on the PATH."""
    here = Path(sys.argv[0])
    if here.name == "runback" and shutil.which("runback") != str(here.resolve()):
        return str(here)
    return "runback"


def _workers(runtime: Runtime, settings: Settings, roles: Roles) -> list[Worker]:
    """The loops this process runs beside its server, by its roles."""
    workers: list[Worker] = []
    if roles.executor:
        workers.append(runtime.executor)
    if roles.dispatcher:
        workers.append(runtime.dispatcher)
    if settings.retention_days > 0 and (roles.executor or roles.dispatcher):
        api = runtime.api
        workers.append(
            Pruner(
                store=api.store,
                blobs=api.blobs,
                clock=api.clock,
                retention=timedelta(days=settings.retention_days),
                batch=settings.prune_batch,
            )
        )
    return workers


def _check_split(settings: Settings) -> None:
    """An ``api`` or ``worker`` process works with others: a worker saves the output files
    that the API serves, at URLs that must reach the API."""
    if settings.public_url is None:
        raise ConfigError(
            "runback api and runback worker need RUNBACK_PUBLIC_URL, the URL clients reach "
            "the API at (output file URLs point there), e.g. http://api.internal:8000"
        )
    if settings.s3_bucket is None and not settings.files_shared:
        raise ConfigError(
            f"output files would stay in this process's {settings.data_dir / 'files'}, which "
            "the other processes cannot read: set RUNBACK_S3_BUCKET, or "
            "RUNBACK_FILES_SHARED=true when every api and worker process uses one files "
            "directory (one host, or a shared mount at the same --data-dir)"
        )


def _master_keys(settings: Settings) -> MasterKeys | None:
    if not settings.master_keys:
        log.warning(
            "no RUNBACK_MASTER_KEYS: callback secrets are stored in plain text; to seal them, "
            'set RUNBACK_MASTER_KEYS="k1:$(openssl rand -base64 32)" and keep it safe '
            "(docs/operations.md)"
        )
        return None
    return MasterKeys.parse(settings.master_keys)


async def serve(
    settings: Settings, *, registry: ModelRegistry, say: Print = print, roles: Roles = Roles()
) -> None:
    """Serve until SIGINT or SIGTERM.

    All in one on SQLite (``runback serve``), the process owns its data directory: it takes
    its lock and hands back its predecessor's claims at once. Otherwise (``api``/``worker``
    processes, or PostgreSQL) processes share the database and take back a dead one's work
    when its leases expire.
    """
    if not roles.everything:
        _check_split(settings)
    data_dir = prepare_data_dir(settings.data_dir)
    url_policy = UrlPolicy.from_allow_list(settings.callback_allow)
    url = settings.effective_database_url
    exclusive = roles.everything and database_url(url).get_backend_name() == "sqlite"
    owning: AbstractContextManager[object] = DataDirLock(data_dir) if exclusive else nullcontext()
    with owning, bind(settings.host, settings.port) as sock:
        async with (
            open_store(
                url,
                sqlite_synchronous=settings.sqlite_synchronous,
                pool_size=settings.database_pool_size,
                schema=settings.database_schema,
                auto_migrate=settings.auto_migrate,
                master_keys=_master_keys(settings),
            ) as store,
            AiohttpSender(
                max_connections=settings.max_in_flight_deliveries, url_policy=url_policy
            ) as sender,
        ):
            clock = SystemClock()
            await store.secrets.reseal()  # seals plain secrets; moves old keys' to the current
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
                notify_others=not exclusive,
            )
            if exclusive:
                await store.deliveries.release_all(now=clock.now())
                await runtime.executor.recover(max_executions=settings.run_max_executions)
            workers = _workers(runtime, settings, roles)
            if roles.api:
                app = create_app(runtime.api)
            else:
                app = base_app("runback worker", ready=lambda: check_schema(store.database))
            await _greet(store, clock, settings, url_of(sock), roles, say)
            listening = asyncio.create_task(runtime.hints.listen(), name="hints")
            try:
                await serve_app(
                    app,
                    sock,
                    access_log=settings.access_log,
                    workers=workers,
                    grace=settings.shutdown_grace,
                )
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
                await runtime.hints.aclose()
