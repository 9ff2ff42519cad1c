"""The Celery alternative of P8: one task doing what runback's dispatcher does per delivery.

    PYTHONPATH=.:.. P8_REDIS_URL=... P8_KEY_PREFIX=... P8_POSTGRES_URL=... P8_SCHEMA=... \\
        P8_SECRET=... python -m celery -A celery_app worker --pool prefork --concurrency 4 ...

Each attempt is made as ``attempts.py`` says (signed as runback signs it, a 10 s timeout, no
redirects, one committed row of ``attempts`` in PostgreSQL), POSTed with ``requests`` over
one kept-alive session per pool process, and retried with Celery's exponential backoff on a
network error or a non-2xx answer. ``acks_late`` with ``task_reject_on_worker_lost``: a task
is acknowledged only after its attempt is recorded, and a killed pool process hands its task
back, which is the at-least-once behaviour runback has."""

from __future__ import annotations

from typing import Any

import psycopg
import requests
from alternatives.attempts import (
    MAX_ATTEMPTS,
    RESPONSE_BODY_LIMIT,
    TASK,
    TIMEOUT_SECONDS,
    ReceiverError,
    Signed,
    insert_sql,
    setting,
)
from celery import Celery, Task  # type: ignore[import-untyped]  # no types shipped

_INSERT = insert_sql(lambda _n, _column: "%s")


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


app = make_app(setting("REDIS_URL"), key_prefix=setting("KEY_PREFIX", "p8:"))

# One HTTP session and one database connection per pool process, made after the fork.
_session: requests.Session | None = None
_db: psycopg.Connection[Any] | None = None


def _connections() -> tuple[requests.Session, psycopg.Connection[Any]]:
    global _session, _db
    if _session is None:
        _session = requests.Session()
    if _db is None or _db.closed:
        _db = psycopg.connect(
            setting("POSTGRES_URL"),
            autocommit=True,
            application_name="p8_celery",
            options=f"-c search_path={setting('SCHEMA')}",
        )
    return _session, _db


@app.task(  # type: ignore[untyped-decorator]  # celery ships no types
    name=TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(requests.RequestException, ReceiverError),
    retry_backoff=1,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAX_ATTEMPTS,
)
def deliver(self: Task, delivery_id: str, url: str, body: str, webhook_id: str) -> None:
    session, db = _connections()
    signed = Signed(body, delivery_id=delivery_id, webhook_id=webhook_id)
    try:
        response = session.post(url, data=signed.body, headers=signed.headers,
                                timeout=TIMEOUT_SECONDS, allow_redirects=False)  # fmt: skip
        attempt = signed.ended(response.status_code, response.text[:RESPONSE_BODY_LIMIT])
    except requests.RequestException as exc:
        attempt = signed.ended(None, None, exc)
    db.execute(_INSERT, attempt.row(delivery_id, self.request.retries + 1))
    attempt.settle()
