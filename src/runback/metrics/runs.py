"""Run families: runs that ended, by model and status, and how long their models ran.

Called once per ended run, by the outbox that ends every run. A model label is a name of the
process's registry; a run of any other model (one the registry does not know, whatever its
submitter wrote) is counted as ``other``.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from runback.core.records import Run

OTHER = "other"

RUNS = Counter("runback_runs_total", "Runs that ended, by model and status.", ["model", "status"])
RUN_SECONDS = Histogram(
    "runback_run_duration_seconds",
    "Time from a run's start (an executor took it) to its end, by model.",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)

_ends: dict[tuple[str, str], Counter] = {}
_durations: dict[str, Histogram] = {}


def run_ended(run: Run, *, known: bool) -> None:
    """``run`` ended (committed); ``known``: its model is one of the registry's."""
    model = run.model if known else OTHER
    key = (model, run.status.value)
    ended = _ends.get(key)
    if ended is None:
        ended = _ends[key] = RUNS.labels(model=model, status=key[1])
    ended.inc()
    if run.started_at is not None and run.completed_at is not None:
        duration = _durations.get(model)
        if duration is None:
            duration = _durations[model] = RUN_SECONDS.labels(model=model)
        duration.observe((run.completed_at - run.started_at).total_seconds())
