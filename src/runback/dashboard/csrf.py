"""CSRF: every POST of a session carries the session's token, in the ``csrf_token`` form
field or the ``X-CSRF-Token`` header (which htmx requests send, from ``hx-headers``).

``SameSite=Strict`` already keeps other sites' forms from sending the cookie; the token is the
second lock, for browsers and proxies that do not honour it.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from runback.dashboard.sessions import CurrentViewer, Viewer
from runback.errors import FieldError, PermissionDeniedError

FIELD = "csrf_token"
HEADER = "x-csrf-token"


class CsrfRejectedError(PermissionDeniedError):
    """A POST without its session's CSRF token."""


def same_token(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


async def checked_viewer(request: Request, viewer: CurrentViewer) -> Viewer:
    """The viewer of a POST that carries its CSRF token; ``403`` otherwise."""
    given = request.headers.get(HEADER)
    if given is None:
        value = (await request.form()).get(FIELD)
        given = value if isinstance(value, str) else None
    if not same_token(given, viewer.csrf_token):
        problem = "missing" if given is None else "not this session's"
        raise CsrfRejectedError(
            f"the CSRF token is {problem}: reload the page and try again",
            errors=[FieldError(field=FIELD, message=problem)],
        )
    return viewer


CheckedViewer = Annotated[Viewer, Depends(checked_viewer)]
"""For every POST route of the dashboard."""
