"""A dispatcher's round in one transaction: the troubled destinations, the claim of due
deliveries within what the gate admits, their organizations' signing secrets, and when the
next delivery is due.

Four transactions a round, as separate calls, cost more than their statements; one carries
them all. The gate (``runback.provider.gate``) is the dispatcher's: it takes the breakers'
state, says which destinations to skip and how much room each has, and counts what it
admits in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from runback.core.destinations import Destination
from runback.core.records import CallbackSecret, Delivery
from runback.store.database import Database
from runback.store.deliveries import claim_due, next_due_at, release
from runback.store.destinations import troubled
from runback.store.moves import Claim
from runback.store.secrets import SecretStore


class Gate(Protocol):
    """What a round asks of the dispatcher's gate (``DestinationGate``)."""

    def update(self, troubled: dict[str, Destination], *, now: datetime) -> None: ...

    def closed(self) -> set[str]: ...

    def room(self, host: str) -> int: ...

    def reopens_at(self) -> datetime | None: ...

    def admit(self, claimed: Iterable[Delivery]) -> tuple[list[Delivery], list[Delivery]]: ...

    def done(self, destination: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Round:
    """What a round claimed (admitted by the gate), with the secrets to sign it, and when
    the next pending delivery to an open destination is due (None: none is pending)."""

    claimed: list[Delivery]
    secrets: dict[UUID, list[CallbackSecret]]
    next_due_at: datetime | None


class DispatchStore:
    """Rounds of the dispatcher."""

    def __init__(self, database: Database, secrets: SecretStore) -> None:
        self._db = database
        self._secrets = secrets

    async def round(
        self, *, worker: str, limit: int, now: datetime, lease_until: datetime, gate: Gate
    ) -> Round:
        """Update ``gate`` with the breakers, claim up to ``limit`` due deliveries for
        ``worker`` within the gate's room, and read what they need; one transaction."""
        admitted: list[Delivery] = []
        try:
            async with self._db.write() as conn:
                gate.update(await troubled(conn), now=now)
                claimed = await claim_due(
                    conn,
                    worker=worker,
                    limit=limit,
                    now=now,
                    lease_until=lease_until,
                    skip_destinations=gate.closed(),
                    room=gate.room,
                )
                admitted, refused = gate.admit(claimed)
                if refused:
                    ids = [d.id for d in refused]
                    await release(conn, Claim.held_by(worker), now=now, ids=ids)
                secrets = await self._secrets.signing_in(
                    conn, {d.organization_id for d in admitted}
                )
                due = await next_due_at(conn, skip_destinations=gate.closed())
                # An open circuit's probe is due when it half-opens: wake then, not a
                # poll interval later.
                reopens = gate.reopens_at()
                if reopens is not None:
                    due = reopens if due is None else min(due, reopens)
        except BaseException:
            for delivery in admitted:  # never sent: free their slots again
                gate.done(delivery.destination)
            raise
        return Round(admitted, secrets, due)
