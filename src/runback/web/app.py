"""The app base: every error answered with the contract's envelope, ``/healthz``,
``/readyz``, ``/metrics``, and the API's pages ``/docs`` and ``/redoc`` (``web.docs``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from runback import metrics
from runback.errors import (
    ApiError,
    ConflictError,
    DatabaseUnavailableError,
    DeliveryInFlightError,
    IdempotencyKeyReusedError,
    SecretDisabledError,
    SecretInUseError,
    ServiceUnavailableError,
    StoreError,
)
from runback.web.bodies import validation_error
from runback.web.docs import add_docs
from runback.web.request_ids import RequestIds
from runback.web.responses import json_response
from runback.web.schemas import Health, errors

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}

# Store refusals the API answers as conflicts. A redelivery refused because another is in
# flight is the contract's one 422 CONFLICT, kept from the public record.
_CONFLICTS: dict[type[Exception], int] = {
    DeliveryInFlightError: 422,
    IdempotencyKeyReusedError: 409,
    SecretDisabledError: 409,
    SecretInUseError: 409,
}


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.envelope(), exc.status_code)


async def _store_refused(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, DatabaseUnavailableError):
        log.warning("answered 503: %s", exc)
        unavailable = ServiceUnavailableError(
            "the database is unavailable for a moment: retry (a submission with the same "
            "Idempotency-Key is never made twice)"
        )
        response = json_response(unavailable.envelope(), unavailable.status_code)
        response.headers["Retry-After"] = "1"
        return response
    status = _CONFLICTS.get(type(exc))
    if status is None:
        return await _unexpected(_request, exc)
    return json_response(ConflictError(str(exc)).envelope(), status)


async def _request_invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return await _api_error(_request, validation_error(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = str(exc.detail)
    path = request.url.path
    if exc.status_code == 404 and message == "Not Found":
        message = f"there is no {path}"
        if len(path) > 1 and path.endswith("/"):
            message += f"; without the trailing slash: {path.rstrip('/')}"
    return json_response({"code": code, "message": message, "errors": None}, exc.status_code)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unexpected error answering %s", _request.url.path, exc_info=exc)
    message = "runback failed to answer; the server log has the details"
    return json_response({"code": "INTERNAL", "message": message, "errors": None}, 500)


_HEALTH: dict[int | str, Any] = {200: {"model": Health}}


def _operation_id(route: APIRoute) -> str:
    # The function's name (create_run, not create_run_v1_models__model__runs_post): what a
    # generated client calls its functions.
    return route.name


class _App(FastAPI):
    """A FastAPI app whose outermost layer binds the request id: the lines of a ``500``
    (logged by the outermost error middleware) carry it too."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIds(super().build_middleware_stack())


Readiness = Callable[[], Awaitable[None]]
"""Raises when the process cannot serve (database unreachable, schema not current)."""


def base_app(
    title: str, *, ready: Readiness | None = None, backlogs: metrics.Backlogs | None = None
) -> FastAPI:
    """An app that answers every error with the contract's envelope, ``/healthz`` (the
    process lives), ``/readyz`` (it can serve: for load balancers) and ``/metrics`` (with
    ``backlogs``' gauges, read from the store)."""
    # No redirects for a trailing slash: a bare 307 (which many clients do not follow for a
    # POST) helps no one; the 404 envelope says what to drop.
    app = _App(
        title=title,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        generate_unique_id_function=_operation_id,
    )
    add_docs(app)  # /docs and /redoc, their assets served here rather than from a CDN
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StoreError, _store_refused)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    @app.get("/healthz", tags=["operations"], responses=_HEALTH)
    async def healthz() -> Response:
        """Answers while the process lives."""
        return json_response({"status": "ok"})

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        """The process's metrics, in Prometheus' text format."""
        body, media_type = await metrics.exposition(backlogs)
        return Response(body, media_type=media_type)

    @app.get("/readyz", tags=["operations"], responses=_HEALTH | errors((503,)))
    async def readyz() -> Response:
        """``200`` when the database answers and its schema is current, else ``503``."""
        try:
            if ready is not None:
                await ready()
        except Exception as exc:
            message = f"not ready: {exc}"
            return json_response({"code": "NOT_READY", "message": message, "errors": None}, 503)
        return json_response({"status": "ready"})

    return app
