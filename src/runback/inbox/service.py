"""``runback receive``: the receiver, its copier and its handlers in one process.

Like ``serve``, it owns its data directory (its own database, keys and copied files) through
an exclusive lock, so at start-up it hands back the claims of a predecessor that died: copies
in flight are fetched again, handlers in flight run again.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

from runback.blobs import BlobStore
from runback.core.clock import SystemClock
from runback.core.urlpolicy import UrlPolicy
from runback.core.verification import Verifier
from runback.datadir import DataDirLock, prepare_data_dir
from runback.errors import ConfigError
from runback.http_server import bind, serve_app, url_of
from runback.inbox.app import ReceiveDeps, create_receive_app
from runback.inbox.copier import Copier
from runback.inbox.handling import HandlerRunner
from runback.outbound.sender import AiohttpSender
from runback.provider.runtime import blob_store
from runback.pruner import Pruner
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry
from runback.settings import Settings
from runback.store import Store, open_store, sqlite_url
from runback.store.database import database_url as database_url_of
from runback.worker import Worker

Print = Callable[[str], None]
_HANDLER_CAPACITY = 16


def verifiers(config: ReceiveConfig) -> dict[str, Verifier]:
    """A verifier per configured source: every secret is checked before the server starts."""
    found = {s.name: Verifier(s.secrets, require_standard=s.require_standard)
             for s in config.sources if s.secrets}  # fmt: skip
    if config.global_secrets:
        Verifier(config.global_secrets)  # refuses a malformed global secret now, not later
    return found


def check_open_sources(config: ReceiveConfig, *, insecure: bool) -> None:
    """Refuse to start with a source anyone may post to, unless told ``--insecure``."""
    if insecure:
        return
    open_sources = [s.name for s in config.sources if s.is_open]
    if not config.global_secrets:
        open_sources.insert(0, "every source without its own secrets")
    if open_sources:
        raise ConfigError(
            f"{'; '.join(open_sources)} would accept unsigned callbacks: give --secret "
            "(or RUNBACK_RECEIVE_SECRETS), a source's secrets or token in --config, or "
            "--insecure for development"
        )


def _blobs(settings: Settings) -> BlobStore:
    if settings.s3_bucket is not None:
        return blob_store(settings)
    return BlobStore.local(settings.receive_data_dir / "files")


async def _greet(store: Store, settings: Settings, url: str, say: Print) -> None:
    clock = SystemClock()
    organization, created = await store.accounts.ensure_default_organization(now=clock.now())
    say(f"runback receiving at {url}/webhooks/<source> (data: {settings.receive_data_dir})")
    if created:
        key = await store.accounts.create_api_key([organization.id], now=clock.now())
        say(f"\nThe inbox API key (GET {url}/v1/inbox), shown this once only:\n\n    {key}\n")


async def receive(
    settings: Settings, *, config: ReceiveConfig, handlers: HandlerRegistry, say: Print = print
) -> None:
    """Receive until SIGINT or SIGTERM."""
    check_open_sources(config, insecure=settings.receive_insecure)
    checked = verifiers(config)
    data_dir = prepare_data_dir(settings.receive_data_dir)
    url = settings.database_url or sqlite_url(data_dir / "runback.db")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    clock = SystemClock()
    # Alone on SQLite, the receiver owns its data directory; on PostgreSQL several share
    # the inbox and take back a dead one's claims when their leases expire.
    exclusive = database_url_of(url).get_backend_name() == "sqlite"
    owning: AbstractContextManager[object] = DataDirLock(data_dir) if exclusive else nullcontext()
    with owning, bind(settings.host, settings.receive_port) as sock:
        async with (
            open_store(
                url,
                sqlite_synchronous=settings.sqlite_synchronous,
                pool_size=settings.database_pool_size,
                schema=settings.database_schema,
                auto_migrate=settings.auto_migrate,
            ) as store,
            AiohttpSender(
                max_connections=settings.receive_copy_concurrency,
                url_policy=UrlPolicy.from_allow_list(settings.callback_allow),
            ) as client,
        ):
            if exclusive:
                await store.inbox.release_claims(now=clock.now())
            blobs = _blobs(settings)
            copier = Copier(
                store=store,
                blobs=blobs,
                session=client.session,
                url_policy=UrlPolicy.from_allow_list(settings.callback_allow),
                clock=clock,
                random=random.random,
                worker_id=worker,
                capacity=settings.receive_copy_concurrency,
                poll_interval=settings.poll_interval,
                max_bytes=settings.receive_max_copy_bytes,
                fetch_timeout=settings.receive_copy_timeout,
            )
            runner = HandlerRunner(
                store=store,
                handlers=handlers,
                clock=clock,
                random=random.random,
                worker_id=worker,
                capacity=_HANDLER_CAPACITY,
                poll_interval=settings.poll_interval,
            )

            def wake(copies: bool, handler: bool) -> None:
                # Only what the callback gave work to: under a flood, rounds that find
                # nothing were a fifth of the receiver's CPU.
                if copies:
                    copier.wake()
                if handler:
                    runner.wake()

            app = create_receive_app(
                ReceiveDeps(
                    store=store,
                    config=config,
                    handlers=handlers,
                    clock=clock,
                    max_body_bytes=settings.receive_max_body_bytes,
                    url_ttl=timedelta(seconds=settings.receive_url_ttl),
                    on_received=wake,
                    verifiers=checked,
                )
            )
            await _greet(store, settings, url_of(sock), say)
            workers: list[Worker] = [copier, runner]
            if settings.retention_days > 0:
                retention = timedelta(days=settings.retention_days)
                workers.append(
                    Pruner(
                        store=store,
                        blobs=blobs,
                        clock=clock,
                        retention=retention,
                        batch=settings.prune_batch,
                        what="inbox",
                    )
                )
            await serve_app(app, sock, access_log=settings.access_log, workers=workers)
