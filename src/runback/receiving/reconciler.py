"""The reconciler: expected runs whose callback never came, polled from their sender.

Each round claims the waiting expectations past their deadline and polls each run
(``GET /v1/runs/{id}`` through ``runback.client``). A run that ended is recorded in the inbox
exactly as its callback would have been: the body built by the core's one rule
(``run_end_body``) from the run's view, its dedupe key, its output copies and its handlers,
the event marked ``reconciled`` and its receipt's scheme ``reconciled``. A run still going,
or a poll that failed (the error kept on the expectation), is polled again later, the delays
growing, until the give-up horizon. Nothing a sender answers stops the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import orjson

from runback import logs
from runback.client import AsyncClient
from runback.client.records import Run
from runback.core.clock import Clock
from runback.core.expected import ExpectedRun, end_sequence, next_poll
from runback.core.ids import new_id
from runback.core.inbox import Receipt
from runback.core.payload import dumps, run_end_body
from runback.core.retry import Random
from runback.receiver.config import ReceiveConfig, Sender
from runback.receiver.handlers import HandlerRegistry
from runback.receiving.recording import drafts
from runback.store import Store
from runback.store.arrivals import Arrival
from runback.work_loop import WorkLoop

log = logging.getLogger(__name__)

SCHEME: Final = "reconciled"
"""The scheme of a receipt the reconciler wrote (no request came)."""
LEASE: Final = timedelta(minutes=5)
"""How long a claimed expectation is held by its poll (a receiver dying mid-poll frees it)."""
MAX_SLEEP: Final = 60.0
"""The longest a round sleeps: a safety net under wake-ups from new expectations."""

ClientFor = Callable[[Sender], AsyncClient]


def ended_run_body(run: Run) -> bytes:
    """The callback body of an ended run, from its GET view: byte for byte the sender's."""
    if run.completed_at is None:
        raise ValueError(f"run {run.id} has not completed")
    return run_end_body(
        run_id=run.id,
        status=run.status_code,
        output=None if run.output is None else dumps(run.output),
        created_at=run.created_at,
        completed_at=run.completed_at,
        metadata=None if run.metadata is None else dumps(run.metadata),
        sequence=end_sequence(run.status_code, run.events, run.event_sequence),
    )


class Reconciler(WorkLoop):
    """Polls the expected runs whose deadline passed, a few at a time."""

    def __init__(
        self,
        *,
        store: Store,
        sources: ReceiveConfig,
        handlers: HandlerRegistry,
        clock: Clock,
        random: Random,
        give_up_after: timedelta,
        url_ttl: timedelta,
        on_recorded: Callable[[bool, bool], None],
        client_for: ClientFor | None = None,
        capacity: int = 8,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(capacity=capacity, poll_interval=poll_interval)
        self._store = store
        self._sources = sources
        self._handlers = handlers
        self._clock = clock
        self._random = random
        self._give_up_after = give_up_after
        self._url_ttl = url_ttl
        self._on_recorded = on_recorded
        self._client_for = client_for or _client
        self._clients: dict[Sender, AsyncClient] = {}

    async def reconcile_due(self) -> int:
        """Poll every expectation due now and wait for the polls (for tests and tools)."""
        polled = 0
        while started := await self._start_due():
            polled += started
            await self._settle()
        return polled

    async def _round(self) -> float:
        await self._start_due()
        if self.room <= 0:
            return self._poll_interval  # a poll ending wakes the loop (waiting for room)
        return _until(await self._store.expected.next_due_at(), self._clock.now())

    async def _start_due(self) -> int:
        room = self.room
        if room <= 0:
            return 0
        now = self._clock.now()
        due = await self._store.expected.claim_due(now=now, limit=room, lease_until=now + LEASE)
        for item in due:
            self._spawn(self._poll(item), name=f"reconcile {item.source}/{item.run_id}")
        self._waiting_for_room = len(due) == room
        return len(due)

    async def _poll(self, item: ExpectedRun) -> None:
        attempts = item.attempts + 1
        logs.start(run_id=item.run_id, attempt=attempts)  # its own task (``_spawn``)
        try:
            error = await self._reconcile(item, attempts)
        except Exception as exc:  # a sender's answer, whatever it is, never stops the loop
            log.warning("polling run %s of %s failed: %s", item.run_id, item.source, exc)
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            return
        now = self._clock.now()
        await self._store.expected.polled(
            item.source,
            item.run_id,
            attempts=attempts,
            error=error or None,
            next_poll_at=next_poll(
                attempts,
                now=now,
                expected_by=item.expected_by,
                give_up_after=self._give_up_after,
                random=self._random,
            ),
            now=now,
        )

    async def _reconcile(self, item: ExpectedRun, attempts: int) -> str | None:
        """Poll the run and record its end: None once recorded; else why not (``""``: it
        has not ended yet)."""
        source = self._sources.source(item.source)
        if source.sender is None:
            return f"source {item.source} has no sender_url in the receive config"
        run = await self._client(source.sender).runs.get(item.run_id)
        if not run.ended:
            return ""
        now = self._clock.now()
        body = ended_run_body(run)
        draft, copies = drafts(
            orjson.loads(body),
            body,
            source=source,
            webhook_id=None,
            handlers=self._handlers,
            received_at=now,
            url_ttl=self._url_ttl,
            reconciled=True,
        )
        receipt = Receipt(new_id(), None, item.source, body, "{}", SCHEME, None, now)
        _, duplicate = await self._store.expected.reconcile(
            Arrival(receipt, draft, tuple(copies)), attempts=attempts
        )
        if not duplicate:
            self._on_recorded(bool(copies), draft.wants_handler)
        log.info("run %s of %s recorded from a poll (reconciled)", item.run_id, item.source)
        return None

    def _client(self, sender: Sender) -> AsyncClient:
        client = self._clients.get(sender)
        if client is None:
            client = self._clients[sender] = self._client_for(sender)
        return client

    async def close(self) -> None:
        """Cancel the polls under way and close the clients."""
        await super().close()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _client(sender: Sender) -> AsyncClient:
    return AsyncClient(sender.url, sender.api_key, timeout=30.0)


def _until(due: datetime | None, now: datetime) -> float:
    if due is None:
        return MAX_SLEEP
    return min(max((due - now).total_seconds(), 0.0), MAX_SLEEP)
