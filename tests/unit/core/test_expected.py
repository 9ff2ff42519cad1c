"""The reconciler's rules: when to poll again, when to give up, what sequence an end says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runback.core.expected import RECONCILE_POLL, end_sequence, next_poll
from runback.core.states import RunStatus

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def no_jitter() -> float:
    return 0.0


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [
        (0, 30.0),  # a poll that failed before counting still waits the first delay
        (1, 30.0),
        (2, 60.0),
        (8, 3600.0),  # capped at an hour
        (50, 3600.0),  # ...and hourly from then on
    ],
)
def test_polls_back_off_to_hourly(attempts: int, seconds: float) -> None:
    due = next_poll(attempts, now=NOW, expected_by=NOW, give_up_after=WEEK, random=no_jitter)

    assert due == NOW + timedelta(seconds=seconds)


def test_jitter_only_lengthens_a_delay() -> None:
    due = next_poll(1, now=NOW, expected_by=NOW, give_up_after=WEEK, random=lambda: 1.0)

    assert due == NOW + timedelta(seconds=30.0 * (1 + RECONCILE_POLL.jitter))


def test_no_poll_is_planned_past_the_give_up_horizon() -> None:
    expected_by = NOW - WEEK + timedelta(seconds=10)

    due = next_poll(3, now=NOW, expected_by=expected_by, give_up_after=WEEK, random=no_jitter)

    assert due is None


@pytest.mark.parametrize(
    ("events", "sequence", "said"),
    [
        (("completed",), 0, None),  # the default: the end in its original bytes
        (("start", "completed"), 3, 3),  # numbered events: the end says its number
    ],
)
def test_the_end_says_a_sequence_only_when_events_were_chosen(
    events: tuple[str, ...], sequence: int, said: int | None
) -> None:
    assert end_sequence(RunStatus.SUCCEEDED, events, sequence) == said


def test_a_run_still_going_has_no_end_sequence() -> None:
    with pytest.raises(ValueError, match="not ended"):
        end_sequence(RunStatus.RUNNING, ("completed",), 0)
