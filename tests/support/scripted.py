"""A real HTTP server on loopback that answers from a script, in a thread of its own.

For the API client's tests: it fails the first attempts (a ``503``, a connection reset, a
silence past the client's timeout) and then answers, recording every request. Its own thread
means a blocking (sync) client and an asyncio one reach it alike.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """One answer: a status, headers and body; or, with ``reset``, a connection closed
    without one; with ``hold``, no answer until the event is set (a server too slow)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    hold: threading.Event | None = None


def json_reply(status: int, value: Any, **headers: str) -> Reply:
    return Reply(
        status, json.dumps(value).encode(), {"Content-Type": "application/json", **headers}
    )


def envelope(status: int, code: str, message: str = "refused", **headers: str) -> Reply:
    return json_reply(status, {"code": code, "message": message, "errors": None}, **headers)


RESET = Reply(reset=True)

Script = Callable[[Seen], Reply]


def in_turn(replies: Sequence[Reply], then: Reply) -> Script:
    """Each reply once, in order, then ``then`` for every later request."""
    pending = list(replies)
    lock = threading.Lock()

    def reply(_seen: Seen) -> Reply:
        with lock:
            return pending.pop(0) if pending else then

    return reply


class ScriptedServer:
    """``ThreadingHTTPServer`` on ``127.0.0.1:0`` answering each request with ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                outer.seen.append(seen)
                reply = outer.script(seen)
                if reply.hold is not None:
                    reply.hold.wait(timeout=30)
                if reply.reset:
                    # SO_LINGER 0: the close sends a RST, as a crashed server's would.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815 (the stdlib's names)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutting down waits for the loop to look.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
