"""Blob storage: one seam over a local directory, any S3-compatible bucket, or memory.

Built on obstore, whose writes are complete or absent: a local file is written aside and
renamed into place, an S3 object exists only once its upload completes. So a crash while
saving never leaves half a file under its key. Sizes and SHA-256 digests are computed while
streaming, never by reading the file again. Content types are kept by the caller (the
database), because a local directory has nowhere to keep them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError as ObstoreNotFound
from obstore.store import LocalStore, MemoryStore, ObjectStore, S3Store

from runback.config import BlobConfig
from runback.errors import RunbackError

_CHUNK = 256 * 1024


class BlobError(RunbackError):
    """Blob storage failed, or a blob broke a limit."""


class BlobTooLargeError(BlobError):
    """A blob grew past the size allowed for it."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """What was written: where, how many bytes, and their SHA-256 (hex)."""

    key: str
    size: int
    sha256: str


class BlobStore:
    """Puts, reads and signs blobs by key."""

    def __init__(self, store: ObjectStore, *, presign: bool = False) -> None:
        self._store = store
        self._presign = presign

    @classmethod
    def local(cls, root: Path) -> BlobStore:
        """Blobs as files under ``root`` (created if needed)."""
        root.mkdir(parents=True, exist_ok=True)
        return cls(LocalStore(root.resolve(), mkdir=True))

    @classmethod
    def memory(cls) -> BlobStore:
        """Blobs in this process's memory: the twin for tests."""
        return cls(MemoryStore())

    @classmethod
    def s3(
        cls,
        *,
        bucket: str,
        endpoint: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        presign: bool = False,
    ) -> BlobStore:
        """Blobs in an S3-compatible bucket; with ``presign``, output URLs are the bucket's
        own presigned URLs."""
        config: dict[str, str | bool] = {"region": region}
        if endpoint is not None:
            config["endpoint"] = endpoint
            config["allow_http"] = endpoint.startswith("http://")
        if access_key_id is not None and secret_access_key is not None:
            config["access_key_id"] = access_key_id
            config["secret_access_key"] = secret_access_key
        return cls(S3Store(bucket, **config), presign=presign)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: BlobConfig) -> BlobStore:
        """The blob store a process's settings name: the bucket if any, else the directory."""
        if config.s3_bucket is None:
            return cls.local(config.directory)
        return cls.s3(
            bucket=config.s3_bucket,
            endpoint=config.s3_endpoint,
            region=config.s3_region,
            access_key_id=config.s3_access_key_id,
            secret_access_key=config.s3_secret_access_key,
            presign=config.s3_presign,
        )

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
        content_type: str | None = None,
    ) -> StoredBlob:
        """Write ``data`` under ``key``, whole or not at all; a bucket keeps ``content_type``
        (what its presigned URLs answer with), a directory has nowhere to."""
        digest = hashlib.sha256()
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            source = _chunks(data) if isinstance(data, bytes) else data
            async for chunk in source:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise BlobTooLargeError(f"{key} is over the limit of {max_bytes} bytes")
                digest.update(chunk)
                yield chunk

        options: dict[str, Any] = {}
        if content_type is not None and not isinstance(self._store, LocalStore):
            options["attributes"] = {"Content-Type": content_type}
        try:
            await obstore.put_async(self._store, key, counted(), **options)
        except ObstoreError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BlobTooLargeError):
                raise cause from None
            raise BlobError(f"writing {key} failed: {exc}") from exc
        return StoredBlob(key=key, size=size, sha256=digest.hexdigest())

    async def size(self, key: str) -> int | None:
        """The size of a blob; None when there is none under ``key``."""
        try:
            meta = await obstore.head_async(self._store, key)
        except (ObstoreNotFound, FileNotFoundError):
            return None
        except ObstoreError as exc:
            raise BlobError(f"reading {key} failed: {exc}") from exc
        return int(meta["size"])

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of a blob from ``start`` up to ``end`` (exclusive), in chunks."""
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start > 0:  # an empty blob has no offset 0: ask for no range at all
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self._store, key, options=options)  # type: ignore[arg-type]
            async for chunk in result.stream(min_chunk_size=_CHUNK):
                yield bytes(chunk)
        except (ObstoreNotFound, FileNotFoundError):
            raise BlobError(f"there is no blob {key}") from None
        except ObstoreError as exc:
            raise BlobError(f"reading {key} failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except (ObstoreNotFound, FileNotFoundError):
            return
        except ObstoreError as exc:
            raise BlobError(f"deleting {key} failed: {exc}") from exc

    async def presigned_url(self, key: str, expires_in: timedelta) -> str | None:
        """The store's own presigned GET URL, when this store presigns; else None."""
        if not self._presign or not isinstance(self._store, S3Store):
            return None
        try:
            return await obstore.sign_async(self._store, "GET", key, expires_in)
        except ObstoreError as exc:
            raise BlobError(f"signing a URL for {key} failed: {exc}") from exc


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, max(len(data), 1), _CHUNK):
        yield data[offset : offset + _CHUNK]
