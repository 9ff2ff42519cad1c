"""The procrastinate alternative of P8: one task doing what runback's dispatcher does per
delivery.

    PYTHONPATH=.:.. P8_POSTGRES_URL=... P8_SCHEMA=... P8_SECRET=... P8_POOL_SIZE=18 \\
        python -m procrastinate --app=procrastinate_app.app worker --concurrency 16 ...

procrastinate's own tables live in the schema ``P8_SCHEMA`` (every connection's
``search_path``), beside the ``attempts`` table. The task is ``async`` (procrastinate runs
``concurrency`` of them on one event loop) and posts with one kept-alive ``aiohttp``
session, the client runback itself uses: the best case for procrastinate. Each attempt is
made as ``attempts.py`` says (signed as runback signs it, a 10 s timeout, no redirects),
recorded as one committed row of ``attempts`` through procrastinate's own connection pool,
and retried with exponential backoff on a network error or a non-2xx answer."""

from __future__ import annotations

import aiohttp
import procrastinate
from alternatives.attempts import (
    COLUMNS,
    MAX_ATTEMPTS,
    QUEUE,
    TASK,
    ReceiverError,
    Signed,
    application_name,
    insert_sql,
    post,
    setting,
)

SYSTEM = "procrastinate"
_INSERT = insert_sql(lambda _n, column: f"%({column})s")


def make_app(url: str, *, schema: str, pool_size: int) -> procrastinate.App:
    """An app whose connections (a pool of ``pool_size``) work in ``schema``."""
    connector = procrastinate.PsycopgConnector(
        conninfo=url,
        kwargs={
            "options": f"-c search_path={schema}",
            "application_name": application_name(SYSTEM, schema),
        },
        min_size=pool_size,
        max_size=pool_size,
    )
    return procrastinate.App(connector=connector)


app = make_app(
    setting("POSTGRES_URL"),
    schema=setting("SCHEMA", "public"),
    pool_size=int(setting("POOL_SIZE", "4")),
)
_session: aiohttp.ClientSession | None = None


def _http() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    return _session


@app.task(
    name=TASK,
    queue=QUEUE,
    pass_context=True,
    retry=procrastinate.RetryStrategy(
        max_attempts=MAX_ATTEMPTS,
        exponential_wait=2,
        retry_exceptions={aiohttp.ClientError, TimeoutError, ReceiverError},
    ),
)
async def deliver(
    context: procrastinate.JobContext, delivery_id: str, url: str, body: str, webhook_id: str
) -> None:
    attempt = await post(_http(), url, Signed(body, delivery_id=delivery_id, webhook_id=webhook_id))
    assert context.job is not None
    row = attempt.row(delivery_id, context.job.attempts + 1)
    await app.connector.execute_query_async(_INSERT, **dict(zip(COLUMNS, row, strict=True)))
    attempt.settle()
