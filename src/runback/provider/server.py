"""``runback serve``: the API, the executor and the dispatcher in one process, or some of
them (``runback api``, ``runback worker``) in a scaled-out deployment.

``runback.process`` starts it; this module says what a serving process is made of.
"""

from __future__ import annotations

import logging
import random
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from runback.blobs import BlobStore
from runback.config import Config, DatabaseConfig
from runback.core.clock import Clock, SystemClock
from runback.core.signing import new_callback_secret
from runback.dashboard.config import DashboardConfig
from runback.errors import ConfigError
from runback.metrics import PROVIDER_QUEUES, Backlogs
from runback.outbound.sender import AiohttpSender
from runback.process import Parts, Place, run_process
from runback.provider.api.app import create_app
from runback.provider.fetcher import AiohttpFetcher
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import Runtime, assemble
from runback.pruner import pruners
from runback.store import Store, check_schema
from runback.tracing import Tracing
from runback.web.app import base_app
from runback.work_loop import WorkLoop

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
    store: Store, clock: Clock, config: Config, url: str, roles: Roles, say: Print
) -> None:
    allow = config.delivery.url_policy.describe() or "public addresses only"
    data_dir = config.server.data_dir
    say(f"runback serving {url} ({roles.describe()}; data: {data_dir.resolve()})")
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
        say(f"another API key: {runback} keys create --data-dir {data_dir}")


def _runback_command() -> str:
    """How to call this runback from a shell: by name when it is on the PATH."""
    here = Path(sys.argv[0])
    if here.name == "runback" and shutil.which("runback") != str(here.resolve()):
        return str(here)
    return "runback"


def _workers(runtime: Runtime, config: Config, roles: Roles) -> list[WorkLoop]:
    """The loops this process runs beside its server, by its roles."""
    workers: list[WorkLoop] = []
    if roles.executor:
        workers.append(runtime.executor)
    if roles.dispatcher:
        workers.append(runtime.dispatcher)
    if roles.executor or roles.dispatcher:
        api = runtime.api
        workers.extend(pruners(config.retention, store=api.store, blobs=api.blobs, clock=api.clock))
    return workers


def _check_split(config: Config) -> None:
    """An ``api`` or ``worker`` process works with others: a worker saves the output files
    that the API serves, at URLs that must reach the API."""
    if config.server.public_url is None:
        raise ConfigError(
            "runback api and runback worker need RUNBACK_PUBLIC_URL, the URL clients reach "
            "the API at (output file URLs point there), e.g. http://api.internal:8000"
        )
    if config.blobs.s3_bucket is None and not config.server.files_shared:
        raise ConfigError(
            f"output files would stay in this process's {config.blobs.directory}, which "
            "the other processes cannot read: set RUNBACK_S3_BUCKET, or "
            "RUNBACK_FILES_SHARED=true when every api and worker process uses one files "
            "directory (one host, or a shared mount at the same --data-dir)"
        )


def warn_unsealed(database: DatabaseConfig) -> None:
    """Say, once at start, that callback secrets would be stored plain, and how to seal them."""
    if database.master_keys is None:
        log.warning(
            "no RUNBACK_MASTER_KEYS: callback secrets are stored in plain text; to seal them, "
            'set RUNBACK_MASTER_KEYS="k1:$(openssl rand -base64 32)" and keep it safe '
            "(docs/operations.md)"
        )


async def serve(
    config: Config,
    *,
    registry: ModelRegistry,
    say: Print = print,
    roles: Roles = Roles(),
    tracing: Tracing | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM.

    All in one on SQLite (``runback serve``), the process owns its data directory: it takes
    its lock and hands back its predecessor's claims at once. Otherwise (``api``/``worker``
    processes, or PostgreSQL) processes share the database and take back a dead one's work
    when its leases expire.
    """
    if not roles.everything:
        _check_split(config)
    warn_unsealed(config.database)

    @asynccontextmanager
    async def build(place: Place) -> AsyncIterator[Parts]:
        store, clock = place.store, SystemClock()
        url_policy = config.delivery.url_policy
        async with AiohttpSender(
            max_connections=config.delivery.max_in_flight, url_policy=url_policy
        ) as sender:
            await store.secrets.reseal()  # seals plain secrets; moves old keys' to the current
            runtime = await assemble(
                delivery=config.delivery,
                execution=config.execution,
                max_body_bytes=config.server.max_body_bytes,
                store=store,
                sender=sender,
                fetcher=AiohttpFetcher(sender.session, url_policy=url_policy),
                blobs=BlobStore.from_config(config.blobs),
                registry=registry,
                clock=clock,
                random=random.random,
                public_url=config.server.public_url or place.url,
                notify_others=not place.owner,
                tracing=tracing,
            )

            async def take_back() -> None:
                await store.deliveries.release_all(now=clock.now())
                await runtime.executor.recover(max_executions=config.execution.max_executions)

            async def greet() -> None:
                await _greet(store, clock, config, place.url, roles, say)

            if roles.api:
                dashboard = DashboardConfig.for_public_url(
                    config.server.public_url or place.url,
                    session_lifetime=config.server.dashboard_session_lifetime,
                )
                app = create_app(runtime.api, dashboard=dashboard)
            else:
                app = base_app(
                    "runback worker",
                    ready=lambda: check_schema(store.database),
                    backlogs=Backlogs(store, clock, queues=PROVIDER_QUEUES),
                )
            try:
                yield Parts(
                    app=app,
                    workers=_workers(runtime, config, roles),
                    take_back=take_back,
                    greet=greet,
                    beside=[runtime.hints.listen],
                )
            finally:
                await runtime.hints.aclose()

    await run_process(config, build, may_own=roles.everything)
