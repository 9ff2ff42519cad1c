"""Flask: verify a callback in one line (needs the ``flask`` extra).

::

    from flask import g
    from runback.receiver.flask import verify_webhook

    @app.post("/webhooks/runflow")
    @verify_webhook(["whsec_..."])
    def receive():
        event = request.get_json()  # g.webhook is the Verified record

The decorator verifies ``request.get_data()`` (the raw body, cached for the view) before the
view runs. A request that fails is answered ``401`` with
``{"code": "INVALID_SIGNATURE", "message": ..., "errors": null}``; the view never runs.
Sync and async views alike. A thin callback (``runback.receiver.thin``) reaches the view
whole: ``request.get_data()`` and ``request.get_json()`` give the full body, fetched with the
standard library; one whose full body cannot be had is answered ``502``
(``THIN_BODY_UNAVAILABLE``), so the sender tries again.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask import Response, g, jsonify, request

from runback.core.verification import DEFAULT_TOLERANCE, Verifier
from runback.errors import ThinBodyError, VerificationError
from runback.receiver.thin import FETCH_TIMEOUT, MAX_FULL_BODY_BYTES, whole_body

View = TypeVar("View", bound=Callable[..., Any])


def verify_webhook(
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    require_standard: bool = False,
    max_full_body_bytes: int = MAX_FULL_BODY_BYTES,
    fetch_timeout: float = FETCH_TIMEOUT,
) -> Callable[[View], View]:
    """A view decorator: verify against ``secrets`` (see ``Verifier``), set ``g.webhook``;
    a thin callback's full body is fetched within ``max_full_body_bytes`` and
    ``fetch_timeout`` seconds."""
    verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)
    limits = _Limits(max_full_body_bytes, fetch_timeout)

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                rejection = _verify(verifier, limits)
                return rejection if rejection is not None else await view(*args, **kwargs)

            return cast(View, async_view)

        @functools.wraps(view)
        def sync_view(*args: Any, **kwargs: Any) -> Any:
            rejection = _verify(verifier, limits)
            return rejection if rejection is not None else view(*args, **kwargs)

        return cast(View, sync_view)

    return decorate


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    timeout: float


def _verify(verifier: Verifier, limits: _Limits) -> Response | None:
    """``None`` once ``g.webhook`` holds the verified record (and the request a thin
    callback's full body), else the error to answer."""
    body = request.get_data(cache=True)
    try:
        g.webhook = verifier.verify(body, request.headers.items())
        whole = whole_body(body, max_bytes=limits.max_bytes, timeout=limits.timeout)
    except (VerificationError, ThinBodyError) as error:
        response = jsonify(error.envelope())
        response.status_code = error.status_code
        return response
    if whole is not body:
        # Werkzeug's cache of the body, which get_data() and get_json() read from.
        request._cached_data = whole
    return None
