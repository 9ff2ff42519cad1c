"""Runware's task API as a front door (seed 003, CONTRACT §8): ``POST /v1`` with an array of
tasks, in Runware's shapes.

Authenticated by ``Authorization: Bearer <key>`` or a first task ``{"taskType":
"authentication", "apiKey"}``. ``imageInference`` makes a run of ``runware/image-inference``
named by the task's ``taskUUID`` (a repeated ``taskUUID`` from one organization replays rather
than running twice). With ``webhookURL`` (or ``"deliveryMethod": "async"``) the answer comes
at once and each result goes to the webhook as soon as it exists; without, the answer waits
for the results. ``getResponse`` answers a task's results so far. Errors are
``{"errors": [{"code", "message", "parameter", "taskType", "taskUUID"}]}``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from runback.core import runware
from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import new_run
from runback.errors import ApiError, IdempotencyKeyReusedError, UrlRefusedError
from runback.models.image_inference import ImageInferenceInput
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, Deps
from runback.provider.api.runs import IDEMPOTENCY_WINDOW, until_ended
from runback.store import Idempotency
from runback.web.auth import key_organizations
from runback.web.bodies import read_body
from runback.web.responses import json_response
from runback.web.schemas import documented, errors
from runback.wording import problem

router = APIRouter(tags=["runware"])

MAX_TASKS: Final = 50
SYNC_WAIT_SECONDS: Final = 120.0
"""How long an answer without a webhook waits for its results."""


class TaskError(Exception):
    """A task refused: answered in Runware's envelope with ``status``."""

    def __init__(self, status: int, entry: dict[str, Any]) -> None:
        super().__init__(entry["message"])
        self.status = status
        self.entry = entry


def _refused(
    message: str, *, status: int = 400, code: str = "invalidTask", **where: Any
) -> TaskError:
    return TaskError(status, runware.error(code, message, **where))


@router.post(
    "/v1",
    responses=documented(
        schemas.RunwareAnswer, fails=(400, 401, 404, 409, 413), error=schemas.RunwareErrors
    )
    | errors((503,)),
)
async def tasks(request: Request, deps: Deps) -> Response:
    """Run an array of Runware tasks: ``authentication``, ``imageInference``, ``getResponse``."""
    try:
        found = await _tasks_of(request, deps)
        organization_id = await _caller(request, deps, found)
        answers: list[dict[str, Any]] = []
        for task in found:
            if task.get("taskType") != "authentication":
                answers.extend(await _task(deps, organization_id, task))
        return json_response({"data": answers})
    except TaskError as refused:
        return json_response(runware.errors(refused.entry), refused.status)
    except ApiError as exc:
        return json_response(runware.errors(runware.error(exc.code, exc.message)), exc.status_code)
    except IdempotencyKeyReusedError as exc:  # the same taskUUID, another task
        return json_response(runware.errors(runware.error("duplicateTaskUUID", str(exc))), 409)
    except orjson.JSONDecodeError as exc:
        return json_response(runware.errors(runware.error("invalidJSON", str(exc))), 400)


async def _tasks_of(request: Request, deps: ApiDeps) -> list[dict[str, Any]]:
    found = orjson.loads(await read_body(request, limit=deps.max_body_bytes) or b"[]")
    if not isinstance(found, list) or not all(isinstance(task, dict) for task in found):
        raise _refused("the body must be a JSON array of task objects")
    if not 1 <= len(found) <= MAX_TASKS:
        raise _refused(f"send 1 to {MAX_TASKS} tasks")
    return found


async def _caller(request: Request, deps: ApiDeps, found: list[dict[str, Any]]) -> UUID:
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else None
    if found[0].get("taskType") == "authentication":
        key = found[0].get("apiKey")
    if not isinstance(key, str) or not key:
        raise _refused(
            "authenticate with 'Authorization: Bearer <key>' or a first authentication task",
            status=401,
            code="missingApiKey",
        )
    try:
        organizations = await key_organizations(deps.store, None, key)
    except ApiError:
        raise _refused(
            "the API key is unknown or revoked", status=401, code="invalidApiKey"
        ) from None
    return organizations[0]


async def _task(deps: ApiDeps, organization_id: UUID, task: dict[str, Any]) -> list[dict[str, Any]]:
    kind, task_uuid = task.get("taskType"), task.get("taskUUID")
    where: dict[str, Any] = {"task_type": kind, "task_uuid": task_uuid}
    if not isinstance(task_uuid, str) or _uuid(task_uuid) is None:
        raise _refused("taskUUID must be a UUID", parameter="taskUUID", **where)
    if kind == "getResponse":
        return await _responses(deps, organization_id, task_uuid)
    if kind != runware.IMAGE_INFERENCE:
        raise _refused(f"taskType {kind!r} is not served here", parameter="taskType", **where)
    at_once = task.get("webhookURL") is not None or task.get("deliveryMethod") == "async"
    run = await _submitted(deps, organization_id, dict(task))
    if at_once:
        return [{"taskType": kind, "taskUUID": task_uuid}]
    return await _results(deps, await until_ended(deps, run, seconds=SYNC_WAIT_SECONDS))


async def _submitted(deps: ApiDeps, organization_id: UUID, task: dict[str, Any]) -> Run:
    where: dict[str, Any] = {"task_type": task.get("taskType"), "task_uuid": task.get("taskUUID")}
    webhook = task.pop("webhookURL", None)
    task.pop("deliveryMethod", None)
    try:
        checked = ImageInferenceInput.model_validate(task)
    except ValidationError as exc:
        first = exc.errors()[0]
        parameter = ".".join(str(part) for part in first["loc"])
        raise _refused(f"{parameter} {problem(first)}", parameter=parameter, **where) from None
    if webhook is not None:
        try:
            deps.url_policy.check(str(webhook))
        except UrlRefusedError as exc:
            raise _refused(str(exc), parameter="webhookURL", **where) from None
    now = deps.clock.now()
    run = new_run(
        run_id=new_id(),
        organization_id=organization_id,
        model=runware.MODEL,
        input=dumps(checked.model_dump()),
        now=now,
        callback_url=None if webhook is None else str(webhook),
    )
    canonical = orjson.dumps([task, webhook], option=orjson.OPT_SORT_KEYS)
    key = Idempotency(
        f"{runware.KEY_PREFIX}{checked.taskUUID}",
        hashlib.sha256(canonical).hexdigest(),
        since=now - IDEMPOTENCY_WINDOW,
    )
    stored = await deps.store.runs.insert(run, idempotency=key)
    if stored.id == run.id:
        deps.on_run_created()
    return stored


async def _results(deps: ApiDeps, run: Run) -> list[dict[str, Any]]:
    task_uuid = runware.task_of(run)["taskUUID"]
    if run.status.is_terminal and run.status.value != "succeeded":
        raise _refused(
            run.failure_message or f"the task ended {run.status}",
            code=run.failure_code or "taskFailed",
            task_type=runware.IMAGE_INFERENCE,
            task_uuid=task_uuid,
        )
    return [
        runware.result_object(run, result, await deps.outbox.shown_result(run, result))
        for result in await deps.store.outputs.results(run.id)
    ]


async def _responses(deps: ApiDeps, organization_id: UUID, task_uuid: str) -> list[dict[str, Any]]:
    run = await deps.store.runs.by_key(organization_id, f"{runware.KEY_PREFIX}{task_uuid}")
    where: dict[str, Any] = {"task_type": "getResponse", "task_uuid": task_uuid}
    if run is None:
        raise _refused(f"there is no task {task_uuid}", status=404, code="taskNotFound", **where)
    if run.status.is_terminal and run.status.value != "succeeded":
        entry = runware.error(run.failure_code or "taskFailed", run.failure_message or "failed")
        return [{"taskType": runware.IMAGE_INFERENCE, "taskUUID": task_uuid, "status": "error",
                 **entry}]  # fmt: skip
    found = [{**result, "status": "success"} for result in await _results(deps, run)]
    if not run.status.is_terminal:
        found.append(
            {"taskType": runware.IMAGE_INFERENCE, "taskUUID": task_uuid, "status": "processing"}
        )
    return found


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
