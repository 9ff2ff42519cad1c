"""What filter forms of every app's pages share: reading their fields."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_moment(text: str | None) -> datetime | None:
    """A form's ``datetime-local`` (taken as UTC) or an ISO time; None when empty.

    Raises ``ValueError`` for other text, which the page shows next to its field.
    """
    if not text or not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
