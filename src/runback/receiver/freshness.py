"""Stale events: a run's events carry a ``sequence``, and a receiver that keeps the highest
it has seen per run can tell an older one that arrived late (a retry that lost a race).

Every event is a full snapshot of its run, so a stale one can be dropped without losing
anything. ``runback receive`` does this in its inbox; this is the same for an application
that receives callbacks itself::

    latest = LatestSequences()

    event = webhook.json()
    if latest.is_stale(event):
        return  # a newer snapshot of this run came first
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping


def sequence_of(payload: object) -> tuple[str, int] | None:
    """The run id and ``sequence`` of a callback's parsed body, when it has both."""
    if not isinstance(payload, Mapping):
        return None
    run_id, sequence = payload.get("run_id"), payload.get("sequence")
    if not isinstance(run_id, str) or isinstance(sequence, bool) or not isinstance(sequence, int):
        return None
    return run_id, sequence


class LatestSequences:
    """The highest ``sequence`` seen per run, in memory, for the ``max_runs`` runs heard
    from last; safe to share between threads."""

    def __init__(self, max_runs: int = 100_000) -> None:
        self._max_runs = max_runs
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def is_stale(self, payload: object) -> bool:
        """Whether this event is older than one already seen of its run (and remember it
        otherwise). An event without a sequence is never stale; a repeat of the latest is
        not stale (a duplicate: deduplicate by ``webhook-id``)."""
        found = sequence_of(payload)
        if found is None:
            return False
        run_id, sequence = found
        with self._lock:
            latest = self._latest.get(run_id)
            if latest is not None and sequence < latest:
                return True
            self._latest[run_id] = sequence
            self._latest.move_to_end(run_id)
            if len(self._latest) > self._max_runs:
                self._latest.popitem(last=False)
        return False
