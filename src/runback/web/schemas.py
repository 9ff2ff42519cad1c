"""The shapes every app shares, for the OpenAPI document only: the error envelope, a page,
a health answer; and ``documented``, a route's ``responses`` from them.

Answers are built as dicts and serialised by orjson (``web.responses``): these models
describe them and are never used to validate or serialise an answer at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Shape(BaseModel):
    """A documented answer: every key listed, no other (``additionalProperties: false``),
    so a conformance check catches a key the document forgot."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(Shape):
    """One invalid field: its dotted path and what is wrong with it."""

    field: str
    message: str


class Error(Shape):
    """The contract's error envelope, the body of every ``4xx`` and ``5xx``."""

    code: str
    message: str
    errors: list[FieldProblem] | None


class Page(Shape, Generic[T]):
    """A page of items and the cursor of the next (null on the last page)."""

    items: list[T]
    next: str | None


class Health(Shape):
    """``/healthz`` and ``/readyz`` while all is well."""

    status: str


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: malformed JSON, a cursor or header this API did not give out",
    401: "No API key, or one unknown or revoked",
    403: "Not allowed: another organization, or an invalid signed URL",
    404: "Not found",
    409: "Conflict with the resource's state",
    413: "The body is over the size limit",
    415: "The body is not JSON",
    416: "The range asked for starts past the end of the file",
    422: "Invalid fields, each named in errors[]",
    429: "Too many requests: retry later",
    502: "An upstream fetch failed: retry later",
    503: "The database is unavailable for a moment: retry",
}

BODY_ERRORS = (400, 413, 415, 422)
"""What reading a JSON body can answer (``web.bodies.read_json``)."""
CALLER_ERRORS = (400, 401, 403, 429, 503)
"""What any route with an API key can answer (``X-Organization-Id``, auth, rate limit,
database)."""


def errors(statuses: Iterable[int], model: type[BaseModel] = Error) -> dict[int | str, Any]:
    """``responses`` entries documenting ``statuses`` as ``model`` (the envelope)."""
    return {
        status: {"model": model, "description": ERROR_DESCRIPTIONS[status]}
        for status in sorted(set(statuses))
    }


def documented(
    model: Any,
    status: int = 200,
    *,
    fails: Iterable[int] = (),
    also: Iterable[int] = (),
    error: type[BaseModel] = Error,
) -> dict[int | str, Any]:
    """A route's ``responses``: ``model`` answered with ``status`` (and each of ``also``),
    and each status of ``fails`` as ``error``. ``422`` is always listed, replacing
    FastAPI's own validation error, which this API never sends."""
    answers: dict[int | str, Any] = {s: {"model": model} for s in (status, *also)}
    return answers | errors({*fails, 422}, error)
