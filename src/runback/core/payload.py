"""The callback's bytes.

runback's bytes, fixed once (receivers verify signatures over them, byte for byte): UTF-8 JSON,
compact separators, non-ASCII unescaped, keys in the contract's order, datetimes as
``datetime.isoformat()`` in UTC (``+00:00``). A delivery freezes these bytes when it is
created; every retry sends them unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from runback.core.clock import isoformat, whole_ms
from runback.core.events import Progress
from runback.core.records import JsonText, Run, RunResult
from runback.core.states import CALLBACK_EVENTS, RunStatus


def dumps(value: Any) -> JsonText:
    """Compact JSON text of a value, in runback's one serialisation."""
    return orjson.dumps(value).decode()


def raw(text: JsonText | None) -> orjson.Fragment | None:
    """Embed stored JSON text in a document without parsing it again."""
    return None if text is None else orjson.Fragment(text)


def failure_output(code: str, message: str) -> JsonText:
    """A failed run's ``output``: the contract's error envelope."""
    return dumps({"code": code, "message": message, "errors": None})


def callback_event(status: RunStatus) -> str:
    """The ``event`` of a callback about a run that ended in ``status``."""
    try:
        return CALLBACK_EVENTS[status]
    except KeyError:
        raise ValueError(f"a run in status {status} has no callback yet") from None


RESULT_EVENT = "run.result"


def result_callback_body(run: Run, result: RunResult, *, data: JsonText | None = None) -> bytes:
    """The frozen body of the callback about one result of ``run``, sent as soon as it
    exists; ``data`` replaces the result's stored data (with its file's freshly signed URL)."""
    return orjson.dumps(
        {
            "event": RESULT_EVENT,
            "run_id": str(run.id),
            "result_id": str(result.id),
            "position": result.position,
            "result": raw(data or result.data),
            "created_at": isoformat(result.created_at),
            "metadata": raw(run.metadata),
        }
    )


def run_callback_body(run: Run, *, output: JsonText | None = None) -> bytes:
    """The frozen body of the callback about a terminal run; ``output`` replaces the run's
    stored output (with its files' freshly signed URLs). A run that asked for events
    (``runback.core.events``) also says its terminal event's ``sequence``, last."""
    if run.completed_at is None:
        raise ValueError(f"run {run.id} has not completed")
    return run_end_body(
        run_id=str(run.id),
        status=run.status,
        output=output or run.output,
        created_at=run.created_at,
        completed_at=run.completed_at,
        metadata=run.metadata,
        sequence=None if run.events is None else run.event_sequence,
    )


def run_end_body(
    *,
    run_id: str,
    status: RunStatus,
    output: JsonText | None,
    created_at: datetime,
    completed_at: datetime,
    metadata: JsonText | None,
    sequence: int | None,
) -> bytes:
    """The callback body of a run's end, from its parts: the one place its shape is written,
    for the sender's outbox and for a receiver that polled the run instead (reconciled)."""
    body = {
        "event": callback_event(status),
        "run_id": run_id,
        "status": status.value,
        "output": None if status is RunStatus.CANCELED else raw(output),
        "duration_ms": whole_ms(created_at, completed_at),
        "created_at": isoformat(created_at),
        "completed_at": isoformat(completed_at),
        "metadata": raw(metadata),
    }
    if sequence is not None:
        body["sequence"] = sequence
    return orjson.dumps(body)


def snapshot_body(
    run: Run,
    event: str,
    *,
    sequence: int,
    output: JsonText | None,
    logs: str | None,
    progress: Progress | None,
    now: datetime,
) -> bytes:
    """The frozen body of an intermediate event: the run as it stands at ``now``, with the
    output files saved so far (``output``), the tail of its log and its last progress."""
    return orjson.dumps(
        {
            "event": event,
            "run_id": str(run.id),
            "status": run.status.value,
            "output": raw(output),
            "logs": logs,
            "progress": None if progress is None else progress.to_json(),
            "created_at": isoformat(run.created_at),
            "started_at": None if run.started_at is None else isoformat(run.started_at),
            "updated_at": isoformat(now),
            "metadata": raw(run.metadata),
            "sequence": sequence,
        }
    )
