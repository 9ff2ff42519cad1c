"""The PgQueuer alternative of P8 (and P2's baseline): one entrypoint doing what runback's
dispatcher does per delivery.

    PYTHONPATH=.. P8_POSTGRES_URL=... P8_SCHEMA=... P8_SECRET=... P8_POOL_SIZE=20 \\
        python pgqueuer_app.py --batch-size 8 --max-concurrent-tasks 16

PgQueuer's tables, its enum, trigger and notify function live in the schema ``P8_SCHEMA``
(``DBSettings.db_schema``), beside the ``attempts`` table, and its ``NOTIFY`` channel is
named after that schema, so a run never wakes or reads another's. The worker is PgQueuer's
own ``QueueManager`` on one asyncpg pool of ``P8_POOL_SIZE`` connections (its listener,
dequeues, status log and heartbeats, and the attempt rows), run by ``pgqueuer.run``, the
supervisor behind ``pgq run`` (whose command line, in pgqueuer 1.6.0 with typer 0.29, fails
on its own ``--log-level`` default); a dequeue picks up to ``--batch-size`` jobs at once,
and ``--max-concurrent-tasks`` caps the jobs in flight (uvloop, as ``pgq run``). The
entrypoint is ``async`` and posts with one kept-alive ``aiohttp`` session, the client
runback itself uses: the best case for PgQueuer. Each attempt is made as ``attempts.py``
says (signed as runback signs it, a 10 s timeout, no redirects), recorded as one committed
row of ``attempts`` through the worker's pool, and retried with exponential backoff
(PgQueuer's ``DatabaseRetryEntrypointExecutor``: the job is re-queued in the database with
its ``execute_after`` pushed back) on a network error or a non-2xx answer; after 14 attempts
it is held as ``failed``.

The benchmark side uses ``install`` (PgQueuer's DDL in a schema that exists) and ``queries``
(``Queries.enqueue``, one job or one batch in one statement) with the same ``settings``.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import asyncpg
import orjson
import pgqueuer
import uvloop
from alternatives.attempts import (
    MAX_ATTEMPTS,
    TASK,
    Signed,
    application_name,
    insert_sql,
    post,
    setting,
)
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.core.logconfig import LogLevel, setup_fancy_logger
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver, Driver
from pgqueuer.domain.settings import DBSettings
from pgqueuer.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import Channel

SYSTEM = "pgqueuer"
_INSERT = insert_sql(lambda n, _column: f"${n}")


def settings(schema: str) -> DBSettings:
    """PgQueuer's object names: its default ones in ``schema``, a channel of its own."""
    return DBSettings(db_schema=schema, channel=Channel(f"ch_{schema}"))


def queries(driver: Driver, schema: str) -> Queries:
    """PgQueuer's queries on ``driver``, for the objects in ``schema``."""
    names = settings(schema)
    return Queries(
        driver,
        qbe=QueryBuilderEnvironment(settings=names),
        qbq=QueryQueueBuilder(settings=names),
        qbs=QuerySchedulerBuilder(settings=names),
    )


async def install(connection: asyncpg.Connection, schema: str) -> None:
    """PgQueuer's tables, enum, trigger and function, in ``schema`` (which exists)."""
    await queries(AsyncpgDriver(connection), schema).install(create_schema=False)


def payload(arguments: dict[str, str]) -> bytes:
    """A job's payload: the arguments the Celery and procrastinate tasks take, as JSON."""
    return orjson.dumps(arguments)


async def deliver(job: Job, *, pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    """One attempt: sign, POST, record; raise (so PgQueuer retries) unless it got a 2xx."""
    assert job.payload is not None
    arguments = orjson.loads(job.payload)
    signed = Signed(
        arguments["body"],
        delivery_id=arguments["delivery_id"],
        webhook_id=arguments["webhook_id"],
    )
    attempt = await post(http, arguments["url"], signed)
    # PgQueuer counts the retries already made.
    row = attempt.row(uuid.UUID(arguments["delivery_id"]), job.attempts + 1)
    await pool.execute(_INSERT, *row)
    attempt.settle()


def retrying(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    """Exponential backoff from 1 s (doubling, at most 10 min), as the Celery task's."""
    return DatabaseRetryEntrypointExecutor(
        parameters=parameters,
        max_attempts=MAX_ATTEMPTS - 1,  # it re-queues while ``job.attempts`` (retries) is below
        initial_delay=timedelta(seconds=1),
        max_delay=timedelta(minutes=10),
        backoff_multiplier=2.0,
    )


@asynccontextmanager
async def worker() -> AsyncIterator[QueueManager]:
    """The worker's factory (``pgq run``'s kind): a queue manager whose one entrypoint is
    ``deliver``."""
    schema, size = setting("SCHEMA"), int(setting("POOL_SIZE", "20"))
    pool = await asyncpg.create_pool(
        setting("POSTGRES_URL"),
        min_size=size,
        max_size=size,
        server_settings={
            "search_path": schema,
            "application_name": application_name(SYSTEM, schema),
        },
    )
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    try:
        manager = QueueManager(
            queries(AsyncpgPoolDriver(pool), schema), channel=settings(schema).channel
        )

        @manager.entrypoint(TASK, on_failure="hold", executor_factory=retrying)
        async def entrypoint(job: Job) -> None:
            await deliver(job, pool=pool, http=http)

        yield manager
    finally:
        await http.close()
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The PgQueuer worker of P8 (until SIGTERM).")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=20)
    arguments = parser.parse_args()
    setup_fancy_logger(LogLevel.WARNING)
    uvloop.run(
        pgqueuer.run(
            worker,
            batch_size=arguments.batch_size,
            max_concurrent_tasks=arguments.max_concurrent_tasks,
        )
    )
