"""The Celery alternative of P8: one task doing what runback's dispatcher does per delivery.

    P8_REDIS_URL=... P8_KEY_PREFIX=... P8_POSTGRES_URL=... P8_SCHEMA=... P8_SECRET=... \\
        python -m celery -A celery_app worker --pool prefork --concurrency 4 ...

Each attempt is signed as runback signs it (``Runflow-Signature`` and Standard Webhooks,
``runback.core.signing``), POSTed with ``requests`` over one kept-alive session per pool
process (10 s timeout, no redirects), recorded as one committed row of ``attempts`` in
PostgreSQL, and retried with Celery's exponential backoff on a network error or a non-2xx
answer. ``acks_late`` with ``task_reject_on_worker_lost``: a task is acknowledged only after
its attempt is recorded, and a killed pool process hands its task back, which is the
at-least-once behaviour runback has.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import requests
from celery import Celery, Task

from runback.core.delivery import attempt_headers

TASK = "p8.deliver"
RESPONSE_BODY_LIMIT = 4096
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
_INSERT = (
    "INSERT INTO attempts (id, delivery_id, attempt_number, status_code, response_body, "
    "response_time_ms, error_message, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


class ReceiverError(Exception):
    """The receiver answered, but not with a 2xx: the attempt failed and is retried."""


def make_app(broker: str, *, key_prefix: str) -> Celery:
    """The Celery app; ``key_prefix`` scopes every Redis key it makes (for the clean-up)."""
    app = Celery("p8", broker=broker)
    app.conf.update(
        broker_transport_options={"global_keyprefix": key_prefix},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(
    os.environ.get("P8_REDIS_URL", "redis://127.0.0.1:6379/0"),
    key_prefix=os.environ.get("P8_KEY_PREFIX", "p8:"),
)

# One HTTP session and one database connection per pool process, made after the fork.
_session: requests.Session | None = None
_db: psycopg.Connection[Any] | None = None


def _connections() -> tuple[requests.Session, psycopg.Connection[Any]]:
    global _session, _db
    if _session is None:
        _session = requests.Session()
    if _db is None or _db.closed:
        _db = psycopg.connect(
            os.environ["P8_POSTGRES_URL"],
            autocommit=True,
            application_name="p8_celery",
            options=f"-c search_path={os.environ['P8_SCHEMA']}",
        )
    return _session, _db


@app.task(
    name=TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(requests.RequestException, ReceiverError),
    retry_backoff=1,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=14,
)
def deliver(self: Task, delivery_id: str, url: str, body: str, webhook_id: str) -> None:
    session, db = _connections()
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
        response = session.post(
            url, data=payload, headers=headers, timeout=10, allow_redirects=False
        )
        status, text = response.status_code, response.text[:RESPONSE_BODY_LIMIT]
        if not 200 <= status < 300:
            failure = ReceiverError(f"receiver answered HTTP {status}")
    except requests.RequestException as exc:
        failure = exc
    elapsed_ms = round((time.perf_counter() - clock) * 1000)
    number = self.request.retries + 1
    db.execute(
        _INSERT,
        (
            uuid.uuid4(),
            delivery_id,
            number,
            status,
            text,
            elapsed_ms,
            None if failure is None else str(failure),
            started,
        ),
    )
    if failure is not None:
        raise failure
