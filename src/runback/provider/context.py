"""What a running model sees of its run.

The context is the one argument that grows: output files, progress, logs, cancellation and
input schemas arrive as its methods and attributes, so a model's signature never changes.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID


class RunContext:
    """The run a model is executing, and the means to talk back to runback."""

    __slots__ = ("deadline", "execution", "model", "organization_id", "run_id")

    def __init__(
        self,
        *,
        run_id: UUID,
        model: str,
        organization_id: UUID,
        execution: int,
        deadline: datetime,
    ) -> None:
        self.run_id = run_id
        self.model = model
        self.organization_id = organization_id
        self.execution = execution
        """1 for the first start; more when a crash interrupted an earlier one."""
        self.deadline = deadline
        """When the run's timeout fires."""
