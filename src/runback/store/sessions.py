"""Dashboard sessions: an API key exchanged for a login that a browser holds by a random id.

The id lives only in the browser's cookie; the row keeps its SHA-256, the API key's row id
(never the key), a CSRF token and an expiry. A session is live while it has not expired and
its key is not revoked: the check joins ``api_keys`` on every read, so revoking a key ends its
sessions at once, in every process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select, update

from runback.core.ids import hash_api_key
from runback.store.database import Database
from runback.store.schema import api_keys, dashboard_sessions, memberships, organizations

_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    """A live dashboard login: its key's organizations (the default first, with their
    names), the one it shows, and its CSRF token."""

    api_key_id: UUID
    organization_ids: tuple[UUID, ...]
    csrf_token: str
    expires_at: datetime
    flash: str | None = None
    chosen: UUID | None = None
    """The organization chosen to be shown; None: the key's default."""
    organization_names: tuple[str, ...] = ()

    @property
    def organization_id(self) -> UUID:
        """The organization the pages show: the chosen one while the key is its member."""
        if self.chosen is not None and self.chosen in self.organization_ids:
            return self.chosen
        return self.organization_ids[0]


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The ``dashboard_sessions`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def open(self, token: str, *, now: datetime, lifetime: timedelta) -> str | None:
        """A new session for a live API key: answers its id (for the cookie only), or None
        when the key is unknown or revoked. Expired sessions are swept on the way."""
        session_id = secrets.token_urlsafe(_ID_BYTES)
        async with self._db.write() as conn:
            key_id = (
                await conn.execute(
                    select(api_keys.c.id).where(
                        api_keys.c.key_hash == hash_api_key(token), api_keys.c.revoked_at.is_(None)
                    )
                )
            ).scalar()
            if key_id is None:
                return None
            await conn.execute(
                delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now)
            )
            await conn.execute(
                dashboard_sessions.insert().values(
                    id_hash=_hashed(session_id),
                    api_key_id=key_id,
                    csrf_token=secrets.token_urlsafe(_ID_BYTES),
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
        return session_id

    async def get(self, session_id: str, *, now: datetime) -> Session | None:
        """The live session of this id; None when unknown, expired or its key revoked."""
        query = (
            select(
                dashboard_sessions,
                memberships.c.organization_id.label("member_of"),
                organizations.c.name,
            )
            .join(api_keys, api_keys.c.id == dashboard_sessions.c.api_key_id)
            .join(memberships, memberships.c.api_key_id == api_keys.c.id)
            .join(organizations, organizations.c.id == memberships.c.organization_id)
            .where(
                dashboard_sessions.c.id_hash == _hashed(session_id),
                dashboard_sessions.c.expires_at > now,
                api_keys.c.revoked_at.is_(None),
            )
            .order_by(memberships.c.position)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return None
        first = rows[0]
        return Session(
            api_key_id=first.api_key_id,
            organization_ids=tuple(row.member_of for row in rows),
            csrf_token=first.csrf_token,
            expires_at=first.expires_at,
            flash=first.flash,
            chosen=first.organization_id,
            organization_names=tuple(row.name for row in rows),
        )

    async def set_flash(self, session_id: str, message: str | None) -> None:
        """Keep ``message`` for the session's next page (None clears it)."""
        async with self._db.write() as conn:
            await conn.execute(
                update(dashboard_sessions)
                .where(dashboard_sessions.c.id_hash == _hashed(session_id))
                .values(flash=message)
            )

    async def choose(self, session_id: str, organization_id: UUID) -> None:
        """Show ``organization_id`` (one of the key's, as the caller checked) from now on."""
        async with self._db.write() as conn:
            await conn.execute(
                update(dashboard_sessions)
                .where(dashboard_sessions.c.id_hash == _hashed(session_id))
                .values(organization_id=organization_id)
            )

    async def close(self, session_id: str) -> None:
        """End a session (logout)."""
        async with self._db.write() as conn:
            await conn.execute(
                delete(dashboard_sessions).where(
                    dashboard_sessions.c.id_hash == _hashed(session_id)
                )
            )
