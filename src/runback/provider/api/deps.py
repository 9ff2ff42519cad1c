"""What every route may depend on: the server's parts, and the caller's organization."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request

from runback.blobs import BlobStore
from runback.core.clock import Clock
from runback.core.urlpolicy import UrlPolicy
from runback.errors import BadRequestError, PermissionDeniedError, RateLimitedError
from runback.outbound.sender import Sender
from runback.provider.ordering import Ordering
from runback.provider.outbox import Outbox
from runback.provider.outputs import Outputs
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.tracing import Tracing
from runback.web.auth import Bearer, key_organizations


class PingSlots:
    """At most ``per_organization`` test pings in flight for one organization: each holds a
    request and a connection for up to its timeout, so a loop of them is refused early."""

    def __init__(self, per_organization: int = 2) -> None:
        self._limit = per_organization
        self._held: dict[UUID, int] = {}

    @contextmanager
    def slot(self, organization_id: UUID) -> Iterator[None]:
        """Hold one slot of ``organization_id``; ``429`` when none is free."""
        held = self._held.get(organization_id, 0)
        if held >= self._limit:
            raise RateLimitedError(
                f"{held} test pings of this organization are in flight already: wait for "
                "their answers"
            )
        self._held[organization_id] = held + 1
        try:
            yield
        finally:
            left = self._held.pop(organization_id) - 1
            if left:
                self._held[organization_id] = left


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """The parts the HTTP API works with, passed in by whoever builds the app."""

    store: Store
    outbox: Outbox
    outputs: Outputs
    blobs: BlobStore
    file_secret: bytes
    registry: ModelRegistry
    clock: Clock
    url_policy: UrlPolicy
    sender: Sender
    """The one sender of callbacks, for test pings."""
    max_body_bytes: int
    on_run_created: Callable[[], None]
    cancel_running: Callable[[UUID], asyncio.Task[Any] | None]
    """Cancel a run this process's executor holds; answers the task to await, if any."""
    ordering: Ordering
    """Ordered callback URLs: switched here, and known to this process's outbox."""
    worker_lease: timedelta = timedelta(seconds=60)
    """A worker not seen for this long is gone (``workers`` rows)."""
    unserved_after: timedelta = timedelta(hours=1)
    """How long a queued run waits for a worker that serves its model, then fails."""
    ping_timeout: float = 5.0
    """Seconds a test ping waits for its answer."""
    pings: PingSlots = field(default_factory=PingSlots)
    tracing: Tracing = field(default_factory=Tracing.off)
    """Spans of submissions (``submit``), when traced."""
    """Test pings in flight, per organization."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The organization a request acts for, and every organization its key may act for."""

    organization_id: UUID
    organization_ids: tuple[UUID, ...]


async def get_deps(request: Request) -> ApiDeps:
    # async: FastAPI runs a plain def dependency in a thread, a hop on every request.
    deps: ApiDeps = request.app.state.deps
    return deps


async def get_caller(
    request: Request,
    deps: Annotated[ApiDeps, Depends(get_deps)],
    credentials: Bearer,
) -> Caller:
    # x-api-key (some front doors' header) read here: one more dependency costs every request.
    api_key = request.headers.get("x-api-key")
    organizations = await key_organizations(deps.store, credentials, api_key)
    chosen = organizations[0]
    header = request.headers.get("x-organization-id")
    if header is not None:
        try:
            chosen = UUID(header)
        except ValueError:
            raise BadRequestError("X-Organization-Id must be an organization's UUID") from None
        if chosen not in organizations:
            raise PermissionDeniedError(f"the API key is not a member of organization {chosen}")
    return Caller(organization_id=chosen, organization_ids=tuple(organizations))


Deps = Annotated[ApiDeps, Depends(get_deps)]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
