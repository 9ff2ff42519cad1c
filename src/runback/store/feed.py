"""An organization's deliveries as they are made, oldest first after a position: what
``runback listen`` follows (``GET /v1/callback-deliveries/stream``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_

from runback.core.records import Delivery
from runback.store.database import Database
from runback.store.rows import delivery_of
from runback.store.schema import deliveries, runs

Position = tuple[datetime, UUID]


class DeliveryFeed:
    """Reads of the ``deliveries`` table in the order they were made."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def after(
        self,
        organization_id: UUID,
        position: Position,
        *,
        url_prefix: str | None = None,
        model: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Up to ``limit`` of the organization's deliveries made after ``position`` (their
        ``created_at`` and id), to callback URLs starting with ``url_prefix`` and about runs of
        ``model``, when given."""
        query = (
            select(deliveries)
            .where(
                deliveries.c.organization_id == organization_id,
                tuple_(deliveries.c.created_at, deliveries.c.id) > tuple_(*position),
            )
            .order_by(deliveries.c.created_at, deliveries.c.id)
            .limit(limit)
        )
        if url_prefix is not None:
            query = query.where(deliveries.c.callback_url.startswith(url_prefix, autoescape=True))
        if model is not None:
            of_model = select(runs.c.id).where(runs.c.model == model)
            query = query.where(deliveries.c.run_id.in_(of_model))
        async with self._db.read() as conn:
            return [delivery_of(row) for row in await conn.execute(query)]
