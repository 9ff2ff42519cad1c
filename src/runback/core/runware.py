"""Runware's task API, as a front door (seed 003, CONTRACT §8): its result objects, its error
envelope, and what its webhook receives.

With ``webhookURL`` every result is POSTed there as soon as it exists, the body the result
object itself; when a task fails, the webhook gets Runware's error envelope instead. Nothing
else is sent: a task's results were its callbacks.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from runback.core.clock import isoformat
from runback.core.records import JsonText, Run, RunResult
from runback.core.retry import RUNWARE_LADDER, RetryPolicy
from runback.core.states import RunStatus

MODEL: Final = "runware/image-inference"
IMAGE_INFERENCE: Final = "imageInference"
KEY_PREFIX: Final = "task:"
"""A task's run is found by its ``taskUUID``, kept as the run's idempotency key."""
LADDER: Final = RetryPolicy(delays=RUNWARE_LADDER, jitter=0.2)
"""Runware's published schedule: 250 ms doubling to 8 s, up to 20 % jitter."""


def error(
    code: str,
    message: str,
    *,
    parameter: str | None = None,
    task_type: str | None = None,
    task_uuid: str | None = None,
) -> dict[str, Any]:
    """One entry of Runware's ``errors`` list."""
    return {
        "code": code,
        "message": message,
        "parameter": parameter,
        "taskType": task_type,
        "taskUUID": task_uuid,
    }


def errors(*found: dict[str, Any]) -> dict[str, Any]:
    return {"errors": list(found)}


def task_of(run: Run) -> dict[str, Any]:
    """The task a run was made from (its input)."""
    task: dict[str, Any] = orjson.loads(run.input)
    return task


def result_object(run: Run, result: RunResult, data: JsonText) -> dict[str, Any]:
    """One result as Runware's API answers it (and its webhook receives it)."""
    task, shown = task_of(run), orjson.loads(data)
    return {
        "taskType": IMAGE_INFERENCE,
        "taskUUID": task["taskUUID"],
        "imageUUID": shown["imageUUID"],
        "imageURL": shown["output"]["url"],
        "model": task.get("model"),
        "width": task["width"],
        "height": task["height"],
        "seed": shown["seed"],
        "cost": shown["cost"],
        "createdAt": isoformat(result.created_at),
    }


def result_body(run: Run, result: RunResult, data: JsonText) -> bytes:
    """The webhook body of one result: the result object itself."""
    return orjson.dumps(result_object(run, result, data))


def ended_body(run: Run, output: JsonText | None) -> bytes | None:
    """The webhook body when a task ends: none when it succeeded (its results were sent),
    Runware's error envelope when it failed."""
    if run.status is RunStatus.SUCCEEDED:
        return None
    task = task_of(run)
    code = "cancelled" if run.status is RunStatus.CANCELED else run.failure_code or "failed"
    message = run.failure_message or "the task was cancelled"
    return orjson.dumps(
        errors(error(code, message, task_type=IMAGE_INFERENCE, task_uuid=task["taskUUID"]))
    )
