"""What every route may depend on: the server's parts, and the caller's organization."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runback.blobs import BlobStore
from runback.core.clock import Clock
from runback.core.urlpolicy import UrlPolicy
from runback.errors import BadRequestError, PermissionDeniedError, UnauthorizedError
from runback.provider.outbox import Outbox
from runback.provider.outputs import Outputs
from runback.provider.registry import ModelRegistry
from runback.store import Store


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
    max_body_bytes: int
    on_run_created: Callable[[], None]
    cancel_running: Callable[[UUID], asyncio.Task[Any] | None]
    """Cancel a run this process's executor holds; answers the task to await, if any."""
    worker_lease: timedelta = timedelta(seconds=60)
    """A worker not seen for this long is gone (``workers`` rows)."""
    unserved_after: timedelta = timedelta(hours=1)
    """How long a queued run waits for a worker that serves its model, then fails."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The organization a request acts for, and every organization its key may act for."""

    organization_id: UUID
    organization_ids: tuple[UUID, ...]


def uuid_or_none(text: str) -> UUID | None:
    """A path's id as a UUID; None for text that is not one (answered as not found)."""
    try:
        return UUID(text)
    except ValueError:
        return None


async def get_deps(request: Request) -> ApiDeps:
    # async: FastAPI runs a plain def dependency in a thread, a hop on every request.
    deps: ApiDeps = request.app.state.deps
    return deps


_bearer = HTTPBearer(auto_error=False, description="an API key: runback keys create")


async def key_organizations(
    store: Store, credentials: HTTPAuthorizationCredentials | None
) -> list[UUID]:
    """The organizations of the request's API key; ``401`` without a live key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError(
            "send 'Authorization: Bearer <api key>'; 'runback keys create' makes a key"
        )
    organizations = await store.accounts.organizations_of(credentials.credentials)
    if not organizations:
        raise UnauthorizedError("the API key is unknown or revoked")
    return organizations


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_caller(
    request: Request, deps: Annotated[ApiDeps, Depends(get_deps)], credentials: Bearer
) -> Caller:
    organizations = await key_organizations(deps.store, credentials)
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
