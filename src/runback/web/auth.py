"""API keys as a bearer token, and ids in paths."""

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
