"""Output files: saved through a run's context, shown as presigned, expiring URLs.

A file is written to blob storage first and recorded in the database after, so a recorded
file always exists whole. URLs are never stored: each callback payload and each API answer
signs them afresh, so a redelivery carries URLs that work for a full lifetime again. The
lifetime is, in order: the run's own ``output_url_ttl``, its model's, the deployment's, or by
default the longer of 24 h and the callback's retry window (so the last retry still carries
URLs that work).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from runback.blobs import BlobStore
from runback.core.clock import Clock, isoformat
from runback.core.file_urls import sign_file_url
from runback.core.ids import new_id
from runback.core.records import JsonText, OutputFile, Run
from runback.core.retry import RetryPolicy
from runback.errors import ModelError
from runback.store import Store

OutputData = bytes | Path | AsyncIterable[bytes]
"""What a model may save: bytes, a file's path, or a stream of chunks."""

MIN_URL_LIFETIME = timedelta(hours=24)
_TYPES = ("image", "video", "audio")
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
}
_FILE_CHUNK = 256 * 1024


def output_type(content_type: str) -> str:
    """``image``, ``video``, ``audio`` or ``file``, from a content type."""
    major = content_type.split("/", 1)[0].lower()
    return major if major in _TYPES else "file"


async def _read_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, _FILE_CHUNK):
            yield chunk


class Outputs:
    """Saves runs' output files and links to them."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        public_url: str,
        file_secret: bytes,
        retry_policy: RetryPolicy,
        deployment_ttl: float | None,
        model_ttl: Callable[[str], float | None],
        max_bytes: int,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._public_url = public_url
        self._file_secret = file_secret
        self._default_ttl = max(MIN_URL_LIFETIME, timedelta(seconds=retry_policy.window))
        self._deployment_ttl = deployment_ttl
        self._model_ttl = model_ttl
        self._max_bytes = max_bytes

    async def save(
        self,
        *,
        run: Run,
        position: int,
        data: OutputData,
        content_type: str,
        type: str | None = None,
    ) -> OutputFile:
        """Write one output file of ``run`` and record it."""
        file_id = new_id()
        extension = _EXTENSIONS.get(content_type, "")
        key = f"runs/{run.id}/{position:04d}-{file_id.hex}{extension}"
        source = _read_file(data) if isinstance(data, Path) else data
        stored = await self._blobs.put(key, source, max_bytes=self._max_bytes)
        output = OutputFile(
            id=file_id,
            run_id=run.id,
            organization_id=run.organization_id,
            position=position,
            type=type or output_type(content_type),
            key=key,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
            created_at=self._clock.now(),
        )
        await self._store.outputs.add(output)
        return output

    async def save_upload(self, run_id: UUID, position: int, data: bytes) -> str:
        """Keep a file a request uploaded for run ``run_id`` (its model reads it with
        ``read_upload``); answers its key."""
        key = f"uploads/{run_id}/{position}"
        await self._blobs.put(key, data)
        return key

    async def read_upload(self, run: Run, key: str) -> bytes:
        """A file uploaded for ``run``; only that run's uploads can be read."""
        if not key.startswith(f"uploads/{run.id}/"):
            raise ModelError(f"{key} is not an upload of this run", code="invalid_input")
        return b"".join([chunk async for chunk in self._blobs.read(key)])

    async def discard(self, run_id: UUID) -> None:
        """Forget the files an interrupted execution of a run saved."""
        for output in await self._store.outputs.remove_for_run(run_id):
            await self._blobs.delete(output.key)

    def lifetime(self, run: Run) -> timedelta:
        """How long ``run``'s output URLs stay valid."""
        for seconds in (run.output_url_ttl, self._model_ttl(run.model), self._deployment_ttl):
            if seconds is not None:
                return timedelta(seconds=seconds)
        return self._default_ttl

    @property
    def default_lifetime(self) -> timedelta:
        """How long URLs stay valid when nothing says otherwise."""
        return self._default_ttl

    async def url(self, output: OutputFile, *, expires_at: datetime) -> str:
        return await self.sign(output.key, expires_at=expires_at)

    async def sign(self, key: str, *, expires_at: datetime) -> str:
        """A URL serving the blob under ``key`` until ``expires_at``."""
        # Signed from the whole second (as an S3 presign dates itself), so a URL expiring at
        # a whole ``expires_at`` stops working at that very instant.
        signed_at = self._clock.now().replace(microsecond=0)
        presigned = await self._blobs.presigned_url(key, expires_at - signed_at)
        return presigned or sign_file_url(
            base_url=self._public_url,
            key=key,
            expires_at=expires_at,
            secret=self._file_secret,
        )

    async def render(self, runs: list[Run]) -> dict[UUID, JsonText | None]:
        """Each run's ``output`` with its files' entries under ``outputs``, freshly signed."""
        files = await self._store.outputs.for_runs(run.id for run in runs if run.output)
        rendered: dict[UUID, JsonText | None] = {}
        for run in runs:
            found = files.get(run.id)
            if not found or run.output is None:
                rendered[run.id] = run.output
                continue
            # Whole seconds, as the URLs carry it (the stated expiry is the instant the URL
            # stops working), rounded up: a URL must outlive the window it was sized for.
            expires_at = self.expires_at(run)
            output: dict[str, Any] = orjson.loads(run.output)
            output["outputs"] = [await self.entry(f, expires_at=expires_at) for f in found]
            rendered[run.id] = orjson.dumps(output).decode()
        return rendered

    def expires_at(self, run: Run) -> datetime:
        """When URLs of ``run``'s files signed now stop working: in whole seconds, as the
        URLs carry it (the stated expiry is the instant the URL stops working), rounded
        up: a URL must outlive the window it was sized for."""
        return self.expires_after(self.lifetime(run))

    def expires_after(self, lifetime: timedelta) -> datetime:
        """When a URL signed now for ``lifetime`` stops working (whole seconds, up)."""
        return _whole_second_up(self._clock.now() + lifetime)

    async def entry(self, output: OutputFile, *, expires_at: datetime) -> dict[str, Any]:
        """A file's entry in an output (``outputs[]``), its URL signed now."""
        return {
            "type": output.type,
            "url": await self.url(output, expires_at=expires_at),
            "content_type": output.content_type,
            "size": output.size,
            "sha256": output.sha256,
            "expires_at": isoformat(expires_at),
        }

    async def render_one(self, run: Run) -> JsonText | None:
        return (await self.render([run]))[run.id]


def _whole_second_up(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)
