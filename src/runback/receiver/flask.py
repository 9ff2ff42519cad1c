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
Sync and async views alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask import Response, g, jsonify, request

from runback.core.verification import DEFAULT_TOLERANCE, Verifier
from runback.errors import VerificationError

View = TypeVar("View", bound=Callable[..., Any])


def verify_webhook(
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    require_standard: bool = False,
) -> Callable[[View], View]:
    """A view decorator: verify against ``secrets`` (see ``Verifier``), set ``g.webhook``."""
    verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                rejection = _verify(verifier)
                return rejection if rejection is not None else await view(*args, **kwargs)

            return cast(View, async_view)

        @functools.wraps(view)
        def sync_view(*args: Any, **kwargs: Any) -> Any:
            rejection = _verify(verifier)
            return rejection if rejection is not None else view(*args, **kwargs)

        return cast(View, sync_view)

    return decorate


def _verify(verifier: Verifier) -> Response | None:
    """``None`` once ``g.webhook`` holds the verified record, else the ``401`` to answer."""
    try:
        g.webhook = verifier.verify(request.get_data(cache=True), request.headers.items())
    except VerificationError as error:
        response = jsonify(error.envelope())
        response.status_code = error.status_code
        return response
    return None
