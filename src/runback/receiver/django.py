"""Django: verify a callback in one line (needs the ``django`` extra).

::

    from runback.receiver.django import verify_webhook

    @verify_webhook(["whsec_..."])
    def receive(request):
        event = json.loads(request.body)  # request.webhook is the Verified record

The decorator verifies ``request.body`` (the raw bytes) before the view runs. A request that
fails is answered ``401`` with ``{"code": "INVALID_SIGNATURE", "message": ..., "errors":
null}``; the view never runs. The view is exempt from CSRF checks: the signature is what
authenticates a callback, and senders carry no CSRF token. Sync and async views alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from runback.core.verification import DEFAULT_TOLERANCE, Verifier
from runback.errors import VerificationError

View = TypeVar("View", bound=Callable[..., Any])


def verify_webhook(
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    require_standard: bool = False,
) -> Callable[[View], View]:
    """A view decorator: verify against ``secrets`` (see ``Verifier``), set ``request.webhook``."""
    verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                rejection = _verify(verifier, request)
                if rejection is not None:
                    return rejection
                return await view(request, *args, **kwargs)

            return cast(View, csrf_exempt(async_view))

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            rejection = _verify(verifier, request)
            return rejection if rejection is not None else view(request, *args, **kwargs)

        return cast(View, csrf_exempt(sync_view))

    return decorate


def _verify(verifier: Verifier, request: HttpRequest) -> JsonResponse | None:
    """``None`` once ``request.webhook`` holds the verified record, else the ``401``."""
    try:
        request.webhook = verifier.verify(request.body, request.headers)
    except VerificationError as error:
        return JsonResponse(error.envelope(), status=error.status_code)
    return None
