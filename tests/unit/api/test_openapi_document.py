"""The OpenAPI document of both apps describes every answer: a schema for each 2xx, the
error envelope (or a front door's own) for each error, no FastAPI validation error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from runback.provider.api.app import create_app
from runback.receiving.app import create_receive_app

ERROR_SCHEMAS = {"Error", "HeadshotsRefusal", "RunwareErrors"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [("serve", _serve_document()), ("receive", create_receive_app(_HELD).openapi())]


# The document is built from the routes alone: the deps are only held, never used.
_HELD: Any = SimpleNamespace(store=None, clock=None)


def _serve_document() -> dict[str, Any]:
    return create_app(_HELD).openapi()


def _answers(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                yield f"{method.upper()} {path}", status, answer


@pytest.mark.parametrize(
    ("app", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_success_has_a_schema(app: str, doc: dict[str, Any]) -> None:
    empty = [
        (where, status)
        for where, status, answer in _answers(doc)
        if status.startswith("2") and status != "204"
        for schema in [media.get("schema") for media in answer.get("content", {}).values()]
        or [None]
        if not schema
    ]
    assert empty == []


@pytest.mark.parametrize(
    ("app", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_error_is_an_envelope(app: str, doc: dict[str, Any]) -> None:
    components = doc["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError"} & set(components)
    assert "HTTPValidationError" not in json.dumps(doc)
    undocumented = []
    for where, status, answer in _answers(doc):
        if status[0] in "45":
            refs = {m["schema"].get("$ref", "") for m in answer["content"].values()}
            if not refs or any(r.rsplit("/", 1)[-1] not in ERROR_SCHEMAS for r in refs):
                undocumented.append((where, status))
    assert undocumented == []
    assert set(components["Error"]["required"]) == {"code", "message", "errors"}


def test_the_run_lists_every_key_the_view_makes() -> None:
    doc = _serve_document()
    run = doc["components"]["schemas"]["Run"]
    assert run["additionalProperties"] is False
    assert set(run["required"]) >= {"id", "status_code", "output", "completed_at", "events"}
    answer = doc["paths"]["/v1/models/{model}/runs"]["post"]["responses"]["201"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Run"}


def test_streams_are_documented_as_event_streams() -> None:
    paths = _serve_document()["paths"]
    for path in ("/v1/runs/{run_id}/stream", "/v1/callback-deliveries/stream"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]


def test_request_bodies_have_no_dangling_references() -> None:
    text = json.dumps(_serve_document())
    assert "#/$defs/" not in text
