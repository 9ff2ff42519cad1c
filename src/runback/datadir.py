"""The data directory, and the lock that makes one ``runback serve`` its only owner.

Holding the lock is what lets a restarted server reclaim its predecessor's runs and
deliveries at once instead of waiting for their leases to expire: no other live process can
own them. The lock is an ``flock``, released by the kernel when the process dies, even by
SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from runback.errors import ConfigError, DataDirLockedError

LOCK_FILE = "serve.lock"


def prepare_data_dir(path: Path) -> Path:
    """Create the data directory if needed; a clear error if it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {path}: {exc.strerror}") from None
    return path


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory for this process's lifetime."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> Self:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLockedError(
                f"another 'runback serve' is using {self._path.parent}; stop it first, or "
                "give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
