"""The ``workers`` table: which executors are alive and which models each serves.

Each executor renews its row a few times per lease; one not seen for a lease is dead. The
table holds a handful of rows, so it is read whole.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import orjson
from sqlalchemy import delete, func, select

from runback.core.states import RunStatus
from runback.store.database import Database
from runback.store.schema import runs, workers


class WorkerStore:
    """Executors' heartbeats, and the queued runs no live one serves."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def beat(self, worker: str, models: Collection[str], *, now: datetime) -> None:
        """``worker`` is alive at ``now`` and serves ``models``."""
        async with self._db.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker))
            await conn.execute(
                workers.insert().values(
                    id=worker, models=orjson.dumps(sorted(models)).decode(), seen_at=now
                )
            )

    async def leave(self, worker: str) -> None:
        """``worker`` stops: it serves nothing from now on."""
        async with self._db.write() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker))

    async def served(self, *, since: datetime) -> set[str]:
        """The models some worker seen since ``since`` serves."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(workers.c.models).where(workers.c.seen_at >= since))
            return {model for row in rows for model in orjson.loads(row.models)}

    async def queued_models(self) -> dict[str, datetime]:
        """Every model with queued runs, and when its oldest queued run was submitted."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(runs.c.model, func.min(runs.c.created_at))
                .where(runs.c.status == RunStatus.QUEUED.value)
                .group_by(runs.c.model)
            )
            return {row[0]: row[1] for row in rows}
