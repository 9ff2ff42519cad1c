"""A run's life as records: submitted queued, ended in one terminal state.

Pure functions over ``Run`` records; the store applies them with conditional updates so that a
run ends once, whoever (executor, cancel, recovery) gets there first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from runback.core.payload import failure_output
from runback.core.records import JsonText, Run
from runback.core.states import RunStatus, check_run_transition


def new_run(
    *,
    run_id: UUID,
    organization_id: UUID,
    model: str,
    input: JsonText,
    now: datetime,
    callback_url: str | None = None,
    metadata: JsonText | None = None,
    client_ref: str | None = None,
    output_url_ttl: int | None = None,
    batch_id: UUID | None = None,
    sequence_index: int | None = None,
    events: tuple[str, ...] | None = None,
) -> Run:
    """A run as it is submitted (alone, or as item ``sequence_index`` of a batch): queued,
    never executed."""
    return Run(
        id=run_id,
        organization_id=organization_id,
        model=model,
        status=RunStatus.QUEUED,
        input=input,
        output=None,
        metadata=metadata,
        client_ref=client_ref,
        callback_url=callback_url,
        failure_code=None,
        failure_message=None,
        batch_id=batch_id,
        execution_count=0,
        created_at=now,
        started_at=None,
        completed_at=None,
        updated_at=now,
        output_url_ttl=output_url_ttl,
        sequence_index=sequence_index,
        events=events,
    )


def as_submitted(run: Run) -> Run:
    """``run`` as it was when submitted, whatever happened since: what a replayed
    ``Idempotency-Key`` answers (the first answer, not the run's current state)."""
    return new_run(
        run_id=run.id,
        organization_id=run.organization_id,
        model=run.model,
        input=run.input,
        now=run.created_at,
        callback_url=run.callback_url,
        metadata=run.metadata,
        client_ref=run.client_ref,
        output_url_ttl=run.output_url_ttl,
        batch_id=run.batch_id,
        sequence_index=run.sequence_index,
        events=run.events,
    )


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: its terminal status, and its output or failure."""

    status: RunStatus
    output: JsonText | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    @classmethod
    def failed(cls, code: str, message: str) -> Ending:
        return cls(RunStatus.FAILED, failure_output(code, message), code, message)

    @classmethod
    def partial(cls, code: str, message: str) -> Ending:
        """Some outputs landed, then the model failed."""
        return cls(RunStatus.PARTIAL_SUCCEEDED, failure_output(code, message), code, message)

    @classmethod
    def canceled(cls) -> Ending:
        return cls(RunStatus.CANCELED)


def end_run(run: Run, ending: Ending, *, now: datetime) -> Run:
    """``run`` in its terminal state, completed ``now``; a run that asked for events
    numbers its terminal event after its latest."""
    if not ending.status.is_terminal:
        raise ValueError(f"{ending.status} is not a terminal status")
    check_run_transition(run.status, ending.status)
    sequence = run.event_sequence if run.events is None else run.event_sequence + 1
    return replace(
        run,
        status=ending.status,
        output=ending.output,
        failure_code=ending.failure_code,
        failure_message=ending.failure_message,
        completed_at=now,
        updated_at=now,
        event_sequence=sequence,
    )
