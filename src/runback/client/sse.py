"""Server-Sent Events, read line by line (sans-IO): the WHATWG rules the run stream uses.

A message is its ``event``, ``id`` and ``data`` fields up to a blank line; ``data`` lines
join with newlines; a line starting with ``:`` is a comment (the keepalive); ``retry`` is the
reconnection delay the server asks for. A message without data is dispatched as nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    event: str
    id: str | None
    data: str


@dataclass
class Decoder:
    """Feed it the stream's lines; it answers each complete message."""

    last_id: str | None = None
    """The last ``id`` seen: what ``Last-Event-ID`` says on reconnecting."""
    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Message | None:
        """The message this line completes, if it is the blank line ending one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Message | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return Message(event=event, id=self.last_id, data="\n".join(data))
