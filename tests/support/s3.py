"""moto's S3 server as a real subprocess on loopback: the S3-compatible bucket of the
integration tier.

``MotoS3`` starts ``python -m moto.server`` on ``127.0.0.1`` and a port that was free a moment
ago, waits (with a deadline) until it answers, makes a bucket, and stops the process at the
end. moto accepts any credentials; buckets are made with a plain HTTP ``PUT``, which it takes
unsigned.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runback.blobs import BlobStore

_POLL = 0.05


def free_port() -> int:
    """A loopback port that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error is an answer: the server is up
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class S3Server:
    """Where a running S3-compatible server is, a bucket on it, and credentials it accepts."""

    endpoint: str
    bucket: str
    access_key_id: str = "test"
    secret_access_key: str = "test"
    region: str = "us-east-1"

    def create_bucket(self, name: str) -> S3Server:
        """Make another bucket on the same server, and answer it."""
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status
        return S3Server(
            self.endpoint, name, self.access_key_id, self.secret_access_key, self.region
        )

    def blob_store(self, *, presign: bool = False) -> BlobStore:
        """runback's blob store over this bucket."""
        return BlobStore.s3(
            bucket=self.bucket,
            endpoint=self.endpoint,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            presign=presign,
        )


class MotoS3:
    """``python -m moto.server`` on loopback; its output goes to ``log``."""

    def __init__(self, log: Path, *, bucket: str = "runback-test") -> None:
        self.log = log
        self._bucket = bucket
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30) -> S3Server:
        """Start the server, wait until it answers, and make the bucket."""
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not _answers(f"{endpoint}/moto-api/"):
            if self._process.poll() is not None:
                raise AssertionError(f"moto exited early:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"moto did not answer in {timeout} s:\n{self.log.read_text()}")
            time.sleep(_POLL)  # polling a condition with a deadline, not synchronising blind
        return S3Server(endpoint, "").create_bucket(self._bucket)

    def stop(self, timeout: float = 10) -> None:
        """Terminate the server, killing it if it does not go in time."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout)

    def __enter__(self) -> S3Server:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
