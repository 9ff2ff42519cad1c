"""FastAPI and Starlette: verify a callback in one line (needs Starlette, which FastAPI brings).

::

    from runback.receiver.starlette import VerifiedWebhook, Webhook, install

    verified = VerifiedWebhook(["whsec_..."])
    install(app)  # rejections answer the contract's envelope

    @app.post("/webhooks/runflow")
    async def receive(webhook: Annotated[Webhook, Depends(verified)]) -> None:
        event = webhook.json()

The dependency reads the raw body once, verifies it and answers a ``Webhook``. A request that
fails raises ``WebhookRejected``, a ``401`` ``HTTPException``: with ``install(app)`` its body
is ``{"code": "INVALID_SIGNATURE", "message": ..., "errors": null}``; without it, whatever
the app answers for HTTP exceptions (FastAPI: ``{"detail": message}``). A thin callback
(``runback.receiver.thin``) is answered whole: ``webhook.body`` is the full body, fetched
without blocking the event loop; one whose full body cannot be had is rejected ``502``
(``THIN_BODY_UNAVAILABLE``), so the sender tries again. In plain Starlette,
call it in the endpoint: ``webhook = await verified(request)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runback.core.verification import DEFAULT_TOLERANCE, Verified, Verifier
from runback.errors import ThinBodyError, VerificationError
from runback.receiver.thin import FETCH_TIMEOUT, MAX_FULL_BODY_BYTES, whole_body_async


@dataclass(frozen=True)
class Webhook:
    """A verified callback: its raw body (a thin one's full body) and how it was signed."""

    body: bytes
    verified: Verified

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON is a ``400``."""
        try:
            return json.loads(self.body)
        except ValueError as exc:  # JSONDecodeError, and bytes that are not UTF-8
            raise HTTPException(400, f"the callback body is not JSON: {exc}") from exc


class WebhookRejected(HTTPException):
    """A ``401``: the request failed verification (or a ``502``: a thin callback's full body
    could not be had); ``error`` says how."""

    def __init__(self, error: VerificationError | ThinBodyError) -> None:
        super().__init__(error.status_code, str(error))
        self.error = error


class VerifiedWebhook:
    """A dependency that verifies the request against ``secrets`` (see ``Verifier``);
    a thin callback's full body is fetched within ``max_full_body_bytes`` and
    ``fetch_timeout`` seconds."""

    def __init__(
        self,
        secrets: Sequence[str],
        *,
        tolerance: timedelta = DEFAULT_TOLERANCE,
        require_standard: bool = False,
        max_full_body_bytes: int = MAX_FULL_BODY_BYTES,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)
        self.max_full_body_bytes = max_full_body_bytes
        self.fetch_timeout = fetch_timeout

    async def __call__(self, request: Request) -> Webhook:
        body = await request.body()
        try:
            verified = self.verifier.verify(body, request.headers)
            whole = await whole_body_async(
                body, max_bytes=self.max_full_body_bytes, fetch_timeout=self.fetch_timeout
            )
        except (VerificationError, ThinBodyError) as error:
            raise WebhookRejected(error) from error
        return Webhook(whole, verified)


async def webhook_rejected(request: Request, exc: Exception) -> Response:
    """The exception handler ``install`` adds: the contract's envelope."""
    if not isinstance(exc, WebhookRejected):  # registered for that class only
        raise exc
    return JSONResponse(exc.error.envelope(), status_code=exc.status_code)


def install(app: Starlette) -> None:
    """Answer ``WebhookRejected`` with the contract's ``401`` envelope."""
    app.add_exception_handler(WebhookRejected, webhook_rejected)
