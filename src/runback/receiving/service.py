"""``runback receive``: the receiver, its copier, its handlers and its reconciler in one
process.

Like ``serve``, it owns its data directory (its own database, keys and copied files) through
an exclusive lock, so at start-up it hands back the claims of a predecessor that died: copies
in flight are fetched again, handlers in flight run again.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from runback.blobs import BlobStore
from runback.config import Config
from runback.core.clock import SystemClock
from runback.core.verification import Verifier
from runback.dashboard.config import DashboardConfig
from runback.errors import ConfigError
from runback.outbound.sender import AiohttpSender
from runback.process import Parts, Place, run_process
from runback.pruner import pruners
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry
from runback.receiving.app import ReceiveDeps, create_receive_app
from runback.receiving.copier import Copier
from runback.receiving.full_bodies import body_fetcher
from runback.receiving.handling import HandlerRunner
from runback.receiving.reconciler import Reconciler
from runback.store import Store

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


async def _greet(store: Store, config: Config, url: str, say: Print) -> None:
    clock = SystemClock()
    organization, created = await store.accounts.ensure_default_organization(now=clock.now())
    say(f"runback receiving at {url}/webhooks/<source> (data: {config.server.data_dir})")
    if created:
        key = await store.accounts.create_api_key([organization.id], now=clock.now())
        say(
            f"\nThe inbox API key (GET {url}/v1/inbox; the dashboard at {url}/dashboard), "
            f"shown this once only:\n\n    {key}\n"
        )


async def receive(
    config: Config, *, sources: ReceiveConfig, handlers: HandlerRegistry, say: Print = print
) -> None:
    """Receive until SIGINT or SIGTERM."""
    receiving = config.receiving
    check_open_sources(sources, insecure=receiving.insecure)
    checked = verifiers(sources)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    clock = SystemClock()

    @asynccontextmanager
    async def build(place: Place) -> AsyncIterator[Parts]:
        store = place.store
        blobs = BlobStore.from_config(config.blobs)
        async with AiohttpSender(
            max_connections=receiving.copy_concurrency, url_policy=receiving.url_policy
        ) as client:
            copier = Copier(
                store=store,
                blobs=blobs,
                session=client.session,
                clock=clock,
                random=random.random,
                worker_id=worker,
                config=receiving,
            )
            runner = HandlerRunner(
                store=store,
                handlers=handlers,
                clock=clock,
                random=random.random,
                worker_id=worker,
                capacity=_HANDLER_CAPACITY,
                poll_interval=receiving.poll_interval,
            )

            def wake(copies: bool, handler: bool) -> None:
                # Only what the callback gave work to: under a flood, rounds that find
                # nothing were a fifth of the receiver's CPU.
                if copies:
                    copier.wake()
                if handler:
                    runner.wake()

            reconciler = Reconciler(
                store=store,
                sources=sources,
                handlers=handlers,
                clock=clock,
                random=random.random,
                give_up_after=receiving.reconcile_give_up,
                url_ttl=receiving.url_ttl,
                on_recorded=wake,
                poll_interval=receiving.poll_interval,
            )

            app = create_receive_app(
                ReceiveDeps(
                    store=store,
                    config=sources,
                    handlers=handlers,
                    clock=clock,
                    max_body_bytes=receiving.max_body_bytes,
                    url_ttl=receiving.url_ttl,
                    on_received=wake,
                    verifiers=checked,
                    fetch_body=body_fetcher(client.session, url_policy=receiving.url_policy),
                    reconcile_after=receiving.reconcile_after,
                    on_expected=reconciler.wake,
                ),
                dashboard=DashboardConfig.for_public_url(
                    config.server.public_url or place.url,
                    session_lifetime=config.server.dashboard_session_lifetime,
                ),
            )
            prune = pruners(config.retention, store=store, blobs=blobs, clock=clock, what="inbox")

            async def greet() -> None:
                await _greet(store, config, place.url, say)

            yield Parts(
                app=app,
                workers=[copier, runner, reconciler, *prune],
                take_back=lambda: store.inbox.release_claims(now=clock.now()),
                greet=greet,
            )

    # Alone on SQLite, the receiver owns its data directory; on PostgreSQL several share
    # the inbox and take back a dead one's claims when their leases expire.
    await run_process(config, build)
