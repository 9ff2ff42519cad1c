"""``runback`` as a real subprocess: started, waited for, killed, restarted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

RUNBACK = [sys.executable, "-m", "runback"]
_SERVING = re.compile(r"runback (?:serving|receiving at) (http://[^\s/]+)")


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one ``runback`` command to its end."""
    return subprocess.run(
        [*RUNBACK, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class ServeProcess:
    """``runback serve --port 0`` (or ``receive``) on a data directory; output goes to a log
    file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        command: str = "serve",
        args: tuple[str, ...] = ("--callback-allow", "127.0.0.0/8"),
        port: int = 0,
        name: str | None = None,
        errors: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self._command = (command, "--port", str(port), "--data-dir", str(data_dir), *args)
        # Processes may share a data dir (api and workers): each its own log.
        self.log = data_dir.parent / f"{name or data_dir.name}-serve.log"
        self._env = {
            **os.environ,
            "RUNBACK_POLL_INTERVAL": "0.2",
            # A receiver that was down is probed again within a second, not half a minute.
            "RUNBACK_BREAKER_OPEN_SECONDS": "1",
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.errors = errors
        """Where stderr (the log lines) goes, apart from the output, when given."""

    def start(self, *, timeout: float = 30) -> Self:
        """Start and wait until it says where it serves."""
        with self.log.open("ab") as log:
            log.write(b"--- start ---\n")
            errors = self.errors.open("ab") if self.errors is not None else None
            try:
                self._process = subprocess.Popen(
                    [*RUNBACK, *self._command],
                    stdout=log,
                    stderr=errors or subprocess.STDOUT,
                    env=self._env,
                )  # fmt: skip
            finally:
                if errors is not None:
                    errors.close()
        deadline = time.monotonic() + timeout
        start = self.log.read_text().rfind("--- start ---")
        while True:
            found = _SERVING.search(self.log.read_text()[start:])
            if found:
                self.url = found.group(1)
                return self
            if self._process.poll() is not None:
                raise AssertionError(f"runback serve exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"runback serve did not start in {timeout} s:\n{self.output()}"
                )
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait for the exit status."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        return self._process.wait(timeout=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
