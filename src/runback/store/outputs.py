"""Output files and results of runs, and runback's own signing keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from runback.core.records import OutputFile, RunResult
from runback.store.database import Database
from runback.store.rows import to_record
from runback.store.schema import run_outputs, run_results, signing_keys
from runback.store.sql import Row

_SIGNING_KEY_BYTES = 32


def _output(row: Row) -> OutputFile:
    return to_record(OutputFile, row)


class OutputStore:
    """The ``run_outputs`` and ``signing_keys`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, output: OutputFile) -> None:
        """Commit an output file, once its blob is completely written."""
        async with self._db.write() as conn:
            await conn.execute(
                run_outputs.insert().values(
                    id=output.id,
                    run_id=output.run_id,
                    organization_id=output.organization_id,
                    position=output.position,
                    type=output.type,
                    key=output.key,
                    content_type=output.content_type,
                    size=output.size,
                    sha256=output.sha256,
                    created_at=output.created_at,
                )
            )

    async def get(self, output_id: UUID) -> OutputFile | None:
        """One output file."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(run_outputs).where(run_outputs.c.id == output_id))
            ).first()
        return None if row is None else _output(row)

    async def result(self, result_id: UUID, *, run_id: UUID) -> RunResult | None:
        """One of ``run_id``'s results."""
        query = select(run_results).where(
            run_results.c.id == result_id, run_results.c.run_id == run_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else to_record(RunResult, row)

    async def results(self, run_id: UUID) -> list[RunResult]:
        """The results ``run_id`` sent, in order."""
        query = (
            select(run_results)
            .where(run_results.c.run_id == run_id)
            .order_by(run_results.c.position, run_results.c.created_at)
        )
        async with self._db.read() as conn:
            return [to_record(RunResult, row) for row in await conn.execute(query)]

    async def for_runs(self, run_ids: Iterable[UUID]) -> dict[UUID, list[OutputFile]]:
        """The outputs of each run, in the order they were saved."""
        ids = set(run_ids)
        found: dict[UUID, list[OutputFile]] = {run_id: [] for run_id in ids}
        if not ids:
            return found
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(run_outputs)
                .where(run_outputs.c.run_id.in_(ids))
                .order_by(run_outputs.c.run_id, run_outputs.c.position)
            )
            for row in rows:
                output = _output(row)
                found[output.run_id].append(output)
        return found

    async def remove_for_run(self, run_id: UUID) -> list[OutputFile]:
        """Forget a run's output files; answers them, for their blobs to be deleted."""
        async with self._db.write() as conn:
            rows = await conn.execute(
                run_outputs.delete().where(run_outputs.c.run_id == run_id).returning(*run_outputs.c)
            )
            return [_output(row) for row in rows]

    async def by_key(self, key: str) -> OutputFile | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(run_outputs).where(run_outputs.c.key == key))).first()
        return None if row is None else _output(row)

    async def signing_key(self, name: str, *, now: datetime) -> bytes:
        """runback's own secret called ``name``, made on first use and kept for good."""
        async with self._db.write() as conn:
            row = (
                await conn.execute(select(signing_keys).where(signing_keys.c.name == name))
            ).first()
            if row is not None:
                return bytes.fromhex(row.secret)
            secret = secrets.token_bytes(_SIGNING_KEY_BYTES)
            await conn.execute(
                signing_keys.insert().values(name=name, secret=secret.hex(), created_at=now)
            )
            return secret
