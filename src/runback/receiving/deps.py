"""What the receiver's routes work with, and how they get it and check its API key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from runback.core.clock import Clock
from runback.core.expected import DEFAULT_RECONCILE_AFTER
from runback.core.verification import Verifier
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry
from runback.store import Store
from runback.web.auth import Bearer, key_organizations


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class ReceiveDeps:
    """What the receiver's routes work with."""

    store: Store
    config: ReceiveConfig
    handlers: HandlerRegistry
    clock: Clock
    max_body_bytes: int
    url_ttl: timedelta
    on_received: Callable[[bool, bool], None]
    """Called once a callback is committed: whether it has copies, whether a handler."""
    verifiers: dict[str, Verifier]
    fetch_body: Callable[[str], Awaitable[bytes]]
    """Fetches a thin callback's full body (guarded, bounded); ``ThinBodyError`` else."""
    reconcile_after: timedelta = DEFAULT_RECONCILE_AFTER
    """An expected run's deadline when neither the request nor its source says."""
    on_expected: Callable[[], None] = _nothing
    """Called once a new expectation is committed (wakes the reconciler)."""


async def _deps(request: Request) -> ReceiveDeps:
    # async: FastAPI runs a plain def dependency in a thread, a hop on every request.
    deps: ReceiveDeps = request.app.state.receive
    return deps


Deps = Annotated[ReceiveDeps, Depends(_deps)]


async def _key(deps: Deps, credentials: Bearer) -> None:
    await key_organizations(deps.store, credentials)


Authorized = Annotated[None, Depends(_key)]
