"""The PgQueuer alternative of P8 (and P2's baseline): one entrypoint doing what runback's
dispatcher does per delivery.

    P8_POSTGRES_URL=... P8_SCHEMA=... P8_SECRET=... P8_POOL_SIZE=20 \\
        python pgqueuer_app.py --batch-size 8 --max-concurrent-tasks 16

PgQueuer's tables, its enum, trigger and notify function live in the schema ``P8_SCHEMA``
(``DBSettings.db_schema``), beside the ``attempts`` table, and its ``NOTIFY`` channel is
named after that schema, so a run never wakes or reads another's. The worker is PgQueuer's
own ``QueueManager`` on one asyncpg pool of ``P8_POOL_SIZE`` connections (its listener,
dequeues, status log and heartbeats, and the attempt rows), run by ``pgqueuer.run``, the
supervisor behind ``pgq run`` (whose command line, in pgqueuer 1.6.0 with typer 0.29, fails
on its own ``--log-level`` default); a dequeue picks up to ``--batch-size`` jobs at once,
and ``--max-concurrent-tasks`` caps the jobs in flight (uvloop, as ``pgq run``).
The entrypoint is ``async`` and posts with one kept-alive ``aiohttp`` session, the client
runback itself uses: the best case for PgQueuer. Each attempt is signed as runback signs it
(``Runflow-Signature`` and Standard Webhooks, ``runback.core.signing``), POSTed with a 10 s
timeout and no redirects, recorded as one committed row of ``attempts`` through the worker's
pool, and retried with exponential backoff (PgQueuer's ``DatabaseRetryEntrypointExecutor``:
the job is re-queued in the database with its ``execute_after`` pushed back) on a network
error or a non-2xx answer; after 14 attempts it is held as ``failed``.

The benchmark side uses ``install`` (PgQueuer's DDL in a schema that exists) and ``queries``
(``Queries.enqueue``, one job or one batch in one statement) with the same ``settings``.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import orjson
import pgqueuer
import uvloop
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

from runback.core.delivery import attempt_headers

TASK = "p8.deliver"
RESPONSE_BODY_LIMIT = 4096
MAX_ATTEMPTS = 14
"""As the Celery and procrastinate tasks: 14 attempts, then the job fails."""
_INSERT = (
    "INSERT INTO attempts (id, delivery_id, attempt_number, status_code, response_body, "
    "response_time_ms, error_message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


class ReceiverError(Exception):
    """The receiver answered, but not with a 2xx: the attempt failed and is retried."""


def application_name(schema: str) -> str:
    """What the worker's connections are called (``pg_stat_activity`` tells them apart)."""
    return f"p8_pgqueuer_{schema}"


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


async def deliver(
    job: Job, *, pool: asyncpg.Pool, http: aiohttp.ClientSession, secret: str
) -> None:
    """One attempt: sign, POST, record; raise (so PgQueuer retries) unless it got a 2xx."""
    assert job.payload is not None
    arguments = orjson.loads(job.payload)
    body = arguments["body"].encode()
    started = datetime.now(UTC)
    headers = attempt_headers(
        body=body,
        webhook_id=arguments["webhook_id"],
        delivery_id=arguments["delivery_id"],
        timestamp=int(started.timestamp()),
        current=secret,
        active=[secret],
    )
    clock = time.perf_counter()
    status: int | None = None
    text: str | None = None
    failure: Exception | None = None
    try:
        async with http.post(
            arguments["url"],
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
            allow_redirects=False,
        ) as response:
            status = response.status
            text = (await response.content.read(RESPONSE_BODY_LIMIT)).decode(errors="replace")
        if not 200 <= status < 300:
            failure = ReceiverError(f"receiver answered HTTP {status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        failure = exc
    await pool.execute(
        _INSERT,
        uuid.uuid4(),
        uuid.UUID(arguments["delivery_id"]),
        job.attempts + 1,  # PgQueuer counts the retries already made
        status,
        text,
        round((time.perf_counter() - clock) * 1000),
        None if failure is None else str(failure),
        started,
    )
    if failure is not None:
        raise failure


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
    schema, secret = os.environ["P8_SCHEMA"], os.environ["P8_SECRET"]
    size = int(os.environ.get("P8_POOL_SIZE", "20"))
    pool = await asyncpg.create_pool(
        os.environ.get("P8_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        min_size=size,
        max_size=size,
        server_settings={"search_path": schema, "application_name": application_name(schema)},
    )
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    try:
        manager = QueueManager(
            queries(AsyncpgPoolDriver(pool), schema), channel=settings(schema).channel
        )

        @manager.entrypoint(TASK, on_failure="hold", executor_factory=retrying)
        async def entrypoint(job: Job) -> None:
            await deliver(job, pool=pool, http=http, secret=secret)

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
