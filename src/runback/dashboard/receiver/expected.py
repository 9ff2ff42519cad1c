"""Expected runs: the runs the receiver was told to expect, and how each stands (arrived,
reconciled by polling its sender, still waiting, or given up on)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from runback.core.expected import ExpectedState
from runback.dashboard.sessions import CurrentViewer
from runback.dashboard.site import CurrentSite
from runback.receiving.deps import Deps
from runback.receiving.expecting import decode_position, encode_position

router = APIRouter()

PAGE_SIZE = 50


@router.get("/expected")
async def expected_page(
    request: Request,
    site: CurrentSite,
    deps: Deps,
    viewer: CurrentViewer,
    state: str = "",
    source: str = "",
    cursor: str | None = None,
) -> Response:
    """Expectations newest first, by state and source."""
    errors: dict[str, str] = {}
    chosen = None
    if state:
        try:
            chosen = ExpectedState(state)
        except ValueError:
            errors["state"] = f"{state!r} is not a state of an expected run"
    found, after = await deps.store.expected.page(
        state=chosen,
        source=source.strip() or None,
        after=decode_position(cursor),
        limit=PAGE_SIZE,
    )
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    context = {
        "expectations": found,
        "states": [s.value for s in ExpectedState],
        "sources": [s.name for s in deps.config.sources],
        "filters": {"state": state, "source": source},
        "errors": errors,
        "next_query": urlencode([*query, ("cursor", encode_position(after))]) if after else None,
    }
    return site.page("receiver/expected.html", context, viewer=viewer, current="/expected")
