"""Django: verify a callback in one line (needs the ``django`` extra).

::

    from runback.receiver.django import verify_webhook

    @verify_webhook(["whsec_..."])
    def receive(request):
        event = json.loads(request.body)  # request.webhook is the Verified record

The decorator verifies ``request.body`` (the raw bytes) before the view runs. A request that
fails is answered ``401`` with ``{"code": "INVALID_SIGNATURE", "message": ..., "errors":
null}``; the view never runs. The view is exempt from CSRF checks: the signature is what
authenticates a callback, and senders carry no CSRF token. Sync and async views alike. A
thin callback (``runback.receiver.thin``) reaches the view whole: ``request.body`` is the full
body, fetched with the standard library (in a worker thread for async views); one whose full
body cannot be had is answered ``502`` (``THIN_BODY_UNAVAILABLE``), so the sender tries
again.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from runback.core.verification import DEFAULT_TOLERANCE, Verifier
from runback.errors import ThinBodyError, VerificationError
from runback.receiver.thin import (
    FETCH_TIMEOUT,
    MAX_FULL_BODY_BYTES,
    whole_body,
    whole_body_async,
)

View = TypeVar("View", bound=Callable[..., Any])


def verify_webhook(
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    require_standard: bool = False,
    max_full_body_bytes: int = MAX_FULL_BODY_BYTES,
    fetch_timeout: float = FETCH_TIMEOUT,
) -> Callable[[View], View]:
    """A view decorator: verify against ``secrets`` (see ``Verifier``), set
    ``request.webhook``; a thin callback's full body is fetched within
    ``max_full_body_bytes`` and ``fetch_timeout`` seconds."""
    verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)
    limits = _Limits(max_full_body_bytes, fetch_timeout)

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                rejection = _verify(verifier, request)
                if rejection is None:
                    rejection = await _whole_async(request, limits)
                if rejection is not None:
                    return rejection
                return await view(request, *args, **kwargs)

            return cast(View, csrf_exempt(async_view))

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            rejection = _verify(verifier, request) or _whole(request, limits)
            return rejection if rejection is not None else view(request, *args, **kwargs)

        return cast(View, csrf_exempt(sync_view))

    return decorate


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    timeout: float


def _verify(verifier: Verifier, request: HttpRequest) -> JsonResponse | None:
    """``None`` once ``request.webhook`` holds the verified record, else the ``401``."""
    try:
        request.webhook = verifier.verify(request.body, request.headers)
    except VerificationError as error:
        return JsonResponse(error.envelope(), status=error.status_code)
    return None


def _whole(request: HttpRequest, limits: _Limits) -> JsonResponse | None:
    """``None`` once ``request.body`` is whole (a thin callback's full body), else the
    ``502`` to answer."""
    try:
        body = whole_body(request.body, max_bytes=limits.max_bytes, timeout=limits.timeout)
    except ThinBodyError as error:
        return JsonResponse(error.envelope(), status=error.status_code)
    _keep(request, body)
    return None


async def _whole_async(request: HttpRequest, limits: _Limits) -> JsonResponse | None:
    """``_whole``, the fetch in a worker thread."""
    try:
        body = await whole_body_async(
            request.body, max_bytes=limits.max_bytes, fetch_timeout=limits.timeout
        )
    except ThinBodyError as error:
        return JsonResponse(error.envelope(), status=error.status_code)
    _keep(request, body)
    return None


def _keep(request: HttpRequest, body: bytes) -> None:
    if body is not request.body:
        request._body = body  # Django's cache of the raw body, which request.body answers
