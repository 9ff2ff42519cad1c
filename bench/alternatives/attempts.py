"""What the alternative tasks of P8 share: one attempt made as runback's dispatcher makes it.

Each attempt is signed as runback signs it (``Runflow-Signature`` and Standard Webhooks,
``runback.core.signing``), POSTed with a 10 s timeout and no redirects, and recorded as one
committed row of ``attempts`` in PostgreSQL; anything but a 2xx is a failure, retried.

The worker processes get their settings from P8 as ``P8_<name>`` environment variables
(``setting``); P8's own process imports these modules only for their names and functions.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from runback.core.delivery import attempt_headers

TASK = "p8.deliver"
QUEUE = "p8"
RESPONSE_BODY_LIMIT = 4096
TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 14
COLUMNS = (
    "id", "delivery_id", "attempt_number", "status_code", "response_body", "response_time_ms",
    "error_message", "created_at",
)  # fmt: skip
ATTEMPTS_DDL = """
CREATE TABLE attempts (
    id uuid PRIMARY KEY,
    delivery_id uuid NOT NULL,
    attempt_number integer NOT NULL,
    status_code integer,
    response_body text,
    response_time_ms integer NOT NULL,
    error_message text,
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_attempts_delivery ON attempts (delivery_id, attempt_number);
"""


class ReceiverError(Exception):
    """The receiver answered, but not with a 2xx: the attempt failed and is retried."""


def setting(name: str, default: str = "") -> str:
    """What P8 gave this worker as ``P8_<name>`` (``default`` in P8's own process)."""
    return os.environ.get(f"P8_{name}", default)


def application_name(system: str, schema: str) -> str:
    """What a worker's connections are called (``pg_stat_activity`` tells them apart)."""
    return f"p8_{system}_{schema}"


def insert_sql(placeholder: Callable[[int, str], str]) -> str:
    """The statement recording one attempt, in a driver's parameter style (``placeholder``
    gets each column's number, from 1, and name)."""
    values = ", ".join(placeholder(n, column) for n, column in enumerate(COLUMNS, 1))
    return f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({values})"


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: when it was signed, the answer (or the failure), how long."""

    started: datetime
    status: int | None
    text: str | None
    elapsed_ms: int
    failure: Exception | None

    def row(self, delivery_id: object, number: int) -> tuple[object, ...]:
        """The ``attempts`` row, in ``COLUMNS`` order."""
        error = None if self.failure is None else str(self.failure)
        return (uuid.uuid4(), delivery_id, number, self.status, self.text, self.elapsed_ms,
                error, self.started)  # fmt: skip

    def settle(self) -> None:
        """Raise the failure, if any, so the queue retries the delivery."""
        if self.failure is not None:
            raise self.failure


class Signed:
    """A delivery's body and headers, signed with P8's secret now; its clock started."""

    def __init__(self, body: str, *, delivery_id: str, webhook_id: str) -> None:
        secret = setting("SECRET")
        self.body = body.encode()
        self.started = datetime.now(UTC)
        self.headers = attempt_headers(
            body=self.body,
            webhook_id=webhook_id,
            delivery_id=delivery_id,
            timestamp=int(self.started.timestamp()),
            current=secret,
            active=[secret],
        )
        self.clock = time.perf_counter()

    def ended(
        self, status: int | None, text: str | None, failure: Exception | None = None
    ) -> Attempt:
        """The attempt, answered ``status`` (or not, with ``failure``)."""
        if failure is None and status is not None and not 200 <= status < 300:
            failure = ReceiverError(f"receiver answered HTTP {status}")
        elapsed_ms = round((time.perf_counter() - self.clock) * 1000)
        return Attempt(self.started, status, text, elapsed_ms, failure)


async def post(http: aiohttp.ClientSession, url: str, signed: Signed) -> Attempt:
    """One attempt over ``http`` (aiohttp, the client runback itself uses)."""
    status: int | None = None
    try:
        async with http.post(
            url,
            data=signed.body,
            headers=signed.headers,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            allow_redirects=False,
        ) as response:
            status = response.status
            text = (await response.content.read(RESPONSE_BODY_LIMIT)).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return signed.ended(status, None, exc)
    return signed.ended(status, text)
