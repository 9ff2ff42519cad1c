"""What the provider's pages share: the API's parts and the viewer as an API caller."""

from __future__ import annotations

# Re-exported: the provider pages import it from here.
from runback.dashboard.forms import parse_moment as parse_moment
from runback.dashboard.sessions import Viewer
from runback.provider.api.deps import Caller


def caller_of(viewer: Viewer) -> Caller:
    """The viewer as the API's routes know a caller: its key's default organization."""
    return Caller(
        organization_id=viewer.organization_id,
        organization_ids=viewer.session.organization_ids,
    )
