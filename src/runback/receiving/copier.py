"""Copying output files out of expiring URLs into the user's storage, in the background.

Each copy streams its URL (through the URL policy, no redirects, within a size and a time
limit) into blob storage, checks the SHA-256 the payload announced, and records where the
file now lives. A failed copy is retried with backoff until its URL expires; one that has
not succeeded by then is ``lost``, said plainly, and never retried again.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp

from runback import logs
from runback.blobs import BlobError, BlobStore
from runback.config import ReceivingConfig
from runback.core.clock import Clock
from runback.core.inbox import Copy, CopyState, next_copy_attempt
from runback.core.retry import Random
from runback.outbound.fetch import FetchFailedError, guarded_get
from runback.store import Store
from runback.work_loop import WorkLoop

_CHUNK = 256 * 1024


class CopyFailedError(Exception):
    """One copy attempt failed; the message says why."""


def stored_key(copy: Copy) -> str:
    """Where a copy lands: ``copies/<event id>/<copy id><the URL's extension>``."""
    extension = posixpath.splitext(urlsplit(copy.source_url).path)[1][:10]
    return f"copies/{copy.event_id}/{copy.id.hex}{extension}"


class Copier(WorkLoop):
    """Fetches due copies, at most ``capacity`` at once."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        session: aiohttp.ClientSession,
        clock: Clock,
        random: Random,
        worker_id: str,
        config: ReceivingConfig,
    ) -> None:
        super().__init__(capacity=config.copy_concurrency, poll_interval=config.poll_interval)
        self._store = store
        self._blobs = blobs
        self._session = session
        self._url_policy = config.url_policy
        self._clock = clock
        self._random = random
        self._worker_id = worker_id
        self._max_bytes = config.max_copy_bytes
        self._fetch_timeout = config.copy_timeout
        self._next_upkeep = datetime.min.replace(tzinfo=UTC)

    async def copy_due(self) -> int:
        """Make every copy due now and wait for them (for tests and tools)."""
        made = 0
        while started := await self._start_due():
            made += started
            await self._settle()
        return made

    async def _round(self) -> float:
        now = self._clock.now()
        if now >= self._next_upkeep:  # take back the copies of receivers that died
            self._next_upkeep = now + timedelta(seconds=self._fetch_timeout / 3 + 10)
            await self._store.inbox.release_claims(now=now, expired_only=True)
        await self._start_due()
        due = await self._store.inbox.next_copy_at()
        if due is None or self.room <= 0:
            return self._poll_interval
        wait = (due - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), self._poll_interval)

    async def _start_due(self) -> int:
        if self.room <= 0:
            return 0
        now = self._clock.now()
        lease = now + timedelta(seconds=self._fetch_timeout + 60)
        claimed = await self._store.inbox.claim_copies(
            worker=self._worker_id, limit=self.room, now=now, lease_until=lease
        )
        for copy in claimed:
            self._spawn(self._copy(copy), name=f"copy {copy.id}")
        return len(claimed)

    async def _copy(self, copy: Copy) -> None:
        logs.start(event_id=copy.event_id, copy_id=copy.id)  # its own task (``_spawn``)
        attempts = copy.attempts + 1
        try:
            if self._clock.now() >= copy.expires_at:
                raise CopyFailedError("not fetched: the URL had already expired")
            key, size, sha256, content_type = await self._fetch(copy)
        except CopyFailedError as exc:
            await self._failed(copy, attempts, str(exc))
            return
        await self._store.inbox.finish_copy(
            copy.id,
            now=self._clock.now(),
            state=CopyState.COPIED,
            attempts=attempts,
            next_attempt_at=None,
            last_error=None,
            stored_key=key,
            size=size,
            sha256=sha256,
            content_type=content_type,
        )

    async def _failed(self, copy: Copy, attempts: int, error: str) -> None:
        now = self._clock.now()
        due = next_copy_attempt(attempts, now=now, expires_at=copy.expires_at, random=self._random)
        if due is None:
            expired = copy.expires_at.isoformat()
            error = f"the URL expired at {expired} before a copy succeeded; last: {error}"
        await self._store.inbox.finish_copy(
            copy.id,
            now=now,
            state=CopyState.PENDING if due is not None else CopyState.LOST,
            attempts=attempts,
            next_attempt_at=due,
            last_error=error,
        )

    async def _fetch(self, copy: Copy) -> tuple[str, int, str, str | None]:
        key = stored_key(copy)
        try:
            async with guarded_get(
                self._session,
                copy.source_url,
                url_policy=self._url_policy,
                seconds=self._fetch_timeout,
            ) as response:
                stored = await self._blobs.put(
                    key, response.content.iter_chunked(_CHUNK), max_bytes=self._max_bytes
                )
                content_type = response.headers.get("Content-Type")
        except (FetchFailedError, BlobError) as exc:
            raise CopyFailedError(str(exc)) from None
        if copy.expected_sha256 and stored.sha256 != copy.expected_sha256.lower():
            await self._blobs.delete(key)
            raise CopyFailedError(
                f"the file's SHA-256 is {stored.sha256}, not {copy.expected_sha256} as announced"
            )
        return key, stored.size, stored.sha256, content_type
