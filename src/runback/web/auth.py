"""API keys as a bearer token (or an ``x-api-key`` header), and ids in paths."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runback.errors import UnauthorizedError
from runback.store import Store


def uuid_or_none(text: str) -> UUID | None:
    """A path's id as a UUID; None for text that is not one (answered as not found)."""
    try:
        return UUID(text)
    except ValueError:
        return None


_bearer = HTTPBearer(auto_error=False, description="an API key: runback keys create")


async def key_organizations(
    store: Store, credentials: HTTPAuthorizationCredentials | None, api_key: str | None = None
) -> list[UUID]:
    """The organizations of the request's API key (``Authorization: Bearer``, or the
    ``x-api-key`` header some front doors use); ``401`` without a live key."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = credentials.credentials
    elif api_key is not None:
        token = api_key
    else:
        raise UnauthorizedError(
            "send 'Authorization: Bearer <api key>'; 'runback keys create' makes a key"
        )
    organizations = await store.accounts.organizations_of(token)
    if not organizations:
        raise UnauthorizedError("the API key is unknown or revoked")
    return organizations


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
