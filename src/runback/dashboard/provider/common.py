"""What the provider's pages share: the API's parts and the viewer as an API caller."""

from __future__ import annotations

from datetime import UTC, datetime

from runback.dashboard.sessions import Viewer
from runback.provider.api.deps import Caller


def caller_of(viewer: Viewer) -> Caller:
    """The viewer as the API's routes know a caller: its key's default organization."""
    return Caller(
        organization_id=viewer.organization_id,
        organization_ids=viewer.session.organization_ids,
    )


def parse_moment(text: str | None) -> datetime | None:
    """A form's ``datetime-local`` (taken as UTC) or an ISO time; None when empty.

    Raises ``ValueError`` for other text, which the page shows next to its field.
    """
    if not text or not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
