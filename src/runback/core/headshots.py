"""The headshots front door's wire shapes (seed 002, CONTRACT §8): its answers and its
callback bodies, which are not the run callback's.

``POST /api/v1/images/generate-headshots`` answers ``{"success": true, "data":
{"headshots_id"}}`` (the id is the run's), errors ``{"success": false, "error": {"code",
"message"}}``; the callback is ``headshots.completed`` with the images' URLs, or
``headshots.failed`` with an error.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from runback.core.clock import isoformat
from runback.core.records import JsonText, Run
from runback.core.states import RunStatus

MODEL: Final = "runflow/generate-headshots"
COMPLETED: Final = "headshots.completed"
FAILED: Final = "headshots.failed"


def answer(data: dict[str, Any]) -> dict[str, Any]:
    """A success on this front door."""
    return {"success": True, "data": data}


def refusal(code: str, message: str) -> dict[str, Any]:
    """An error on this front door."""
    return {"success": False, "error": {"code": code, "message": message}}


def image_urls(output: JsonText | None) -> list[str]:
    """The URLs of a run's output files, in order (its ``output`` as rendered, URLs signed)."""
    if output is None:
        return []
    found: dict[str, Any] = orjson.loads(output)
    return [entry["url"] for entry in found.get("outputs", [])]


def _error(run: Run) -> dict[str, str]:
    if run.status is RunStatus.CANCELED:
        return {"code": "canceled", "message": "the headshots were cancelled"}
    return {"code": run.failure_code or "failed", "message": run.failure_message or "failed"}


def callback_body(run: Run, output: JsonText | None) -> bytes:
    """The frozen body of the callback about an ended headshots run."""
    if run.status is RunStatus.SUCCEEDED:
        body: dict[str, Any] = {
            "event": COMPLETED,
            "headshots_id": str(run.id),
            "image_urls": image_urls(output),
        }
    else:
        body = {"event": FAILED, "headshots_id": str(run.id), "error": _error(run)}
    return orjson.dumps(body)


def status_view(run: Run, output: JsonText | None) -> dict[str, Any]:
    """``GET .../generate-headshots/{id}``: how the headshots are doing."""
    data: dict[str, Any] = {
        "headshots_id": str(run.id),
        "status": run.status.value,
        "created_at": isoformat(run.created_at),
        "completed_at": isoformat(run.completed_at),
    }
    if run.status is RunStatus.SUCCEEDED:
        data["image_urls"] = image_urls(output)
    elif run.status.is_terminal:
        data["error"] = _error(run)
    return answer(data)
