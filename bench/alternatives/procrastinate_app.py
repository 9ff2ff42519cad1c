"""The procrastinate alternative of P8: one task doing what runback's dispatcher does per
delivery.

    P8_POSTGRES_URL=... P8_SCHEMA=... P8_SECRET=... P8_POOL_SIZE=18 \\
        python -m procrastinate --app=procrastinate_app.app worker --concurrency 16 ...

procrastinate's own tables live in the schema ``P8_SCHEMA`` (every connection's
``search_path``), beside the ``attempts`` table. The task is ``async`` (procrastinate runs
``concurrency`` of them on one event loop) and posts with one kept-alive ``aiohttp`` session,
the client runback itself uses: the best case for procrastinate. Each attempt is signed as
runback signs it, POSTed with a 10 s timeout and no redirects, recorded as one committed row
of ``attempts`` through procrastinate's own connection pool, and retried with exponential
backoff on a network error or a non-2xx answer.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import procrastinate

from runback.core.delivery import attempt_headers

TASK = "p8.deliver"
RESPONSE_BODY_LIMIT = 4096
_INSERT = (
    "INSERT INTO attempts (id, delivery_id, attempt_number, status_code, response_body, "
    "response_time_ms, error_message, created_at) VALUES (%(id)s, %(delivery_id)s, "
    "%(number)s, %(status)s, %(body)s, %(elapsed_ms)s, %(error)s, %(created_at)s)"
)


class ReceiverError(Exception):
    """The receiver answered, but not with a 2xx: the attempt failed and is retried."""


def application_name(schema: str) -> str:
    """What the worker's connections are called (``pg_stat_activity`` tells them apart)."""
    return f"p8_procrastinate_{schema}"


def make_app(url: str, *, schema: str, pool_size: int) -> procrastinate.App:
    """An app whose connections (a pool of ``pool_size``) work in ``schema``."""
    connector = procrastinate.PsycopgConnector(
        conninfo=url,
        kwargs={
            "options": f"-c search_path={schema}",
            "application_name": application_name(schema),
        },
        min_size=pool_size,
        max_size=pool_size,
    )
    return procrastinate.App(connector=connector)


app = make_app(
    os.environ.get("P8_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    schema=os.environ.get("P8_SCHEMA", "public"),
    pool_size=int(os.environ.get("P8_POOL_SIZE", "4")),
)
_session: aiohttp.ClientSession | None = None


def _http() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    return _session


@app.task(
    name=TASK,
    queue="p8",
    pass_context=True,
    retry=procrastinate.RetryStrategy(
        max_attempts=14,
        exponential_wait=2,
        retry_exceptions={aiohttp.ClientError, TimeoutError, ReceiverError},
    ),
)
async def deliver(
    context: procrastinate.JobContext, delivery_id: str, url: str, body: str, webhook_id: str
) -> None:
    secret = os.environ["P8_SECRET"]
    payload = body.encode()
    started = datetime.now(UTC)
    headers = attempt_headers(
        body=payload,
        webhook_id=webhook_id,
        delivery_id=delivery_id,
        timestamp=int(started.timestamp()),
        current=secret,
        active=[secret],
    )
    clock = time.perf_counter()
    status: int | None = None
    text: str | None = None
    failure: Exception | None = None
    try:
        async with _http().post(
            url,
            data=payload,
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
    assert context.job is not None
    await app.connector.execute_query_async(
        _INSERT,
        id=uuid.uuid4(),
        delivery_id=delivery_id,
        number=context.job.attempts + 1,
        status=status,
        body=text,
        elapsed_ms=round((time.perf_counter() - clock) * 1000),
        error=None if failure is None else str(failure),
        created_at=started,
    )
    if failure is not None:
        raise failure
