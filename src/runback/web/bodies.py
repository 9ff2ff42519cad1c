"""Reading request bodies: size-limited, parsed once with orjson, validated by pydantic.

Every problem becomes the contract's envelope naming the field: a ``413`` past the size
limit, a ``415`` for a body that says it is not JSON, a ``400`` for malformed JSON and a
``422`` listing each invalid field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from runback.errors import (
    BadRequestError,
    FieldError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    ValidationFailedError,
)
from runback.wording import problem

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 32
"""Objects and arrays nested deeper than this are refused: no one needs more, and
recursive code downstream (yours included) should not have to cope."""


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (iteratively: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


_SOURCES = frozenset({"body", "query", "path", "header"})


def field_errors(
    errors: Iterable[Mapping[str, Any]], *, prefix: str | None = None
) -> list[FieldError]:
    """pydantic's errors as the envelope's ``errors[]``: a dotted field path and a message;
    ``prefix`` names where the validated value sits (``input`` for a model's input)."""
    found: list[FieldError] = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in _SOURCES:
            source, location = location[0], location[1:]
            if source != "body":  # a repeated query parameter is named, not its index
                location = [part for part in location if not part.isdigit()]
        if prefix is not None:
            location.insert(0, prefix)
        field = ".".join(location) or "body"
        found.append({"field": field, "message": problem(error)})
    return found


def validation_error(
    errors: Iterable[Mapping[str, Any]], *, prefix: str | None = None
) -> ValidationFailedError:
    listed = field_errors(errors, prefix=prefix)
    summary = "; ".join(f"{e['field']} {e['message']}" for e in listed)
    return ValidationFailedError(f"the request is invalid: {summary}", errors=listed)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refused with ``413`` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"the body is over the limit of {limit} bytes")
    return bytes(body)


async def read_json(request: Request, model: type[M], *, limit: int) -> M:
    """The body as a validated ``model``."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaError(
            f"the body is {media_type}; send JSON with 'Content-Type: application/json'"
        )
    body = await read_body(request, limit=limit)
    try:
        data = orjson.loads(body) if body.strip() else {}  # empty or blank: no fields
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailedError.for_field("body", "must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise ValidationFailedError.for_field("body", f"is nested deeper than {MAX_DEPTH} levels")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def documented_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a route's JSON body as ``model`` (routes read
    their body themselves, with ``read_json``, so FastAPI cannot see it)."""
    schema = model.model_json_schema()
    content = {"application/json": {"schema": _inlined(schema, schema.pop("$defs", {}))}}
    return {"requestBody": {"required": required, "content": content}}


def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``#/$defs/...`` references replaced by what they name: the
    document has no ``$defs`` for them to point into (request bodies are not recursive)."""
    if isinstance(schema, list):
        return [_inlined(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inlined(defs[ref.removeprefix("#/$defs/")], defs) | rest
    return {key: _inlined(value, defs) for key, value in schema.items()}
