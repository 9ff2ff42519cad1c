"""``BlobStore`` against each real backend: a local directory, memory, and an S3 server (moto on
loopback). Writes are whole or absent, reads and ranges give back exactly what was put, and
only a presigning S3 store hands out its own URLs."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import aiohttp
import pytest

from runback.blobs import BlobError, BlobStore, BlobTooLargeError
from support.s3 import S3Server
from support.waiting import wait_for

MB = 1024 * 1024
BODY = random.Random(5).randbytes(3 * MB)
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()
CHUNK = 100_003  # not a power of two: chunks straddle every internal boundary


async def chunked(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def read_all(blobs: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in blobs.read(key, start=start, end=end)])


@pytest.fixture(params=["local", "memory", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A blob store of each kind, empty; S3's is a fresh bucket on the session's server."""
    if request.param == "local":
        return BlobStore.local(tmp_path / "blobs")
    if request.param == "memory":
        return BlobStore.memory()
    server: S3Server = request.getfixturevalue("s3_server")
    return server.create_bucket(f"t-{uuid4().hex}").blob_store()


async def test_put_answers_the_size_and_sha256_of_a_streamed_body(blobs: BlobStore) -> None:
    stored = await blobs.put("a/body.bin", chunked(BODY))

    assert (stored.key, stored.size, stored.sha256) == ("a/body.bin", len(BODY), BODY_SHA256)


async def test_a_streamed_body_reads_back_whole(blobs: BlobStore) -> None:
    await blobs.put("a/body.bin", chunked(BODY))

    read = await read_all(blobs, "a/body.bin")

    assert hashlib.sha256(read).hexdigest() == BODY_SHA256


async def test_bytes_put_whole_read_back_whole(blobs: BlobStore) -> None:
    stored = await blobs.put("small.txt", b"hello")

    assert await read_all(blobs, "small.txt") == b"hello"
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()


async def test_size_is_that_of_the_blob(blobs: BlobStore) -> None:
    await blobs.put("a/body.bin", chunked(BODY))

    assert await blobs.size("a/body.bin") == len(BODY)


async def test_size_of_a_key_with_no_blob_is_none(blobs: BlobStore) -> None:
    assert await blobs.size("nothing/here.bin") is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 10),  # the first bytes
        (256 * 1024 - 5, 256 * 1024 + 5),  # across the store's read chunk size
        (MB, 2 * MB + 17),  # a long slice in the middle
        (len(BODY) - 1, len(BODY)),  # the last byte
        (len(BODY) - 1000, None),  # from an offset to the end
        (0, None),  # from the start to the end
    ],
)
async def test_a_range_read_gives_exactly_those_bytes(
    blobs: BlobStore, start: int, end: int | None
) -> None:
    await blobs.put("a/body.bin", chunked(BODY))

    assert await read_all(blobs, "a/body.bin", start, end) == BODY[start:end]


async def test_an_empty_blob_reads_back_empty(blobs: BlobStore) -> None:
    await blobs.put("empty.bin", b"")

    assert await read_all(blobs, "empty.bin") == b""


async def test_reading_a_key_with_no_blob_raises_blob_error(blobs: BlobStore) -> None:
    with pytest.raises(BlobError):
        await read_all(blobs, "nothing/here.bin")


async def test_delete_removes_the_blob(blobs: BlobStore) -> None:
    await blobs.put("gone.bin", b"x")

    await blobs.delete("gone.bin")

    assert await blobs.size("gone.bin") is None


async def test_deleting_a_key_with_no_blob_is_quiet(blobs: BlobStore) -> None:
    await blobs.delete("never/was.bin")


async def test_a_second_put_replaces_the_blob(blobs: BlobStore) -> None:
    await blobs.put("k.bin", b"first version")

    await blobs.put("k.bin", b"second")

    assert await read_all(blobs, "k.bin") == b"second"


async def test_a_body_over_max_bytes_raises_and_leaves_no_blob(blobs: BlobStore) -> None:
    with pytest.raises(BlobTooLargeError):
        await blobs.put("big.bin", chunked(BODY), max_bytes=MB)

    assert await blobs.size("big.bin") is None


async def test_a_body_over_max_bytes_leaves_the_previous_blob_whole(blobs: BlobStore) -> None:
    await blobs.put("big.bin", b"kept")

    with pytest.raises(BlobTooLargeError):
        await blobs.put("big.bin", chunked(BODY), max_bytes=MB)

    assert await read_all(blobs, "big.bin") == b"kept"


async def test_a_body_of_exactly_max_bytes_is_kept(blobs: BlobStore) -> None:
    stored = await blobs.put("edge.bin", chunked(BODY), max_bytes=len(BODY))

    assert stored.size == len(BODY)


async def test_a_presigning_s3_store_gives_a_url_that_downloads_the_blob(
    s3_server: S3Server,
) -> None:
    blobs = s3_server.blob_store(presign=True)
    await blobs.put("signed/body.bin", chunked(BODY))

    url = await blobs.presigned_url("signed/body.bin", timedelta(hours=1))

    assert url is not None
    assert url.startswith(f"{s3_server.endpoint}/")
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        body = await response.read()
    assert hashlib.sha256(body).hexdigest() == BODY_SHA256


async def test_a_presigned_url_carries_its_lifetime(s3_server: S3Server) -> None:
    blobs = s3_server.blob_store(presign=True)

    url = await blobs.presigned_url("any.bin", timedelta(minutes=90))

    assert url is not None
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["5400"]


async def test_a_store_that_does_not_presign_gives_no_url(blobs: BlobStore) -> None:
    """Local and memory stores leave URLs to runback's ``/files``; so does S3 without presign."""
    await blobs.put("a.bin", b"x")

    assert await blobs.presigned_url("a.bin", timedelta(hours=1)) is None


# Puts a stream under "half.bin" that never ends: 1 MB chunks with a pause after each. After
# 8 MB (past the 5 MB a local put buffers before it first writes) it leaves a marker file.
_SLOW_WRITER = """
import asyncio, sys
from pathlib import Path
from runback.blobs import BlobStore

async def slow():
    sent = 0
    while True:
        yield b"x" * (1024 * 1024)
        sent += 1
        if sent == 8:
            Path(sys.argv[2]).write_text("mid-write")
        await asyncio.sleep(0.01)

asyncio.run(BlobStore.local(Path(sys.argv[1])).put("half.bin", slow()))
"""


@contextmanager
def slow_writer(root: Path, marker: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The slow writer as a subprocess, killed at the end whatever happens."""
    process = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(root), str(marker)])
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _staged_bytes(root: Path) -> int:
    """Bytes in files of ``root`` other than ``half.bin`` itself: a write in progress."""
    return sum(p.stat().st_size for p in root.iterdir() if p.is_file() and p.name != "half.bin")


async def test_a_crash_while_saving_leaves_no_visible_half_file(tmp_path: Path) -> None:
    root, marker = tmp_path / "blobs", tmp_path / "marker"
    root.mkdir()

    with slow_writer(root, marker) as writer:
        await wait_for(
            lambda: marker.exists() and _staged_bytes(root) > 0,
            timeout=30,
            what="the writer is mid-write with bytes staged",
        )
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)

    assert await BlobStore.local(root).size("half.bin") is None
    assert not (root / "half.bin").exists()
