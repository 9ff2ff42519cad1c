"""Logging: one JSON object per line (or text for a terminal), the ids of the work under way
on every line, and no secret in any of them.

The ids live in one context variable, bound where work starts (an API request, a run's
execution, a delivery's attempt, a received callback, a copy): asyncio copies it into every
task spawned from there, so a line logged anywhere below carries them. Binding is one
``ContextVar.set``; the ids are read only when a line is formatted, so a level that is off
costs nothing more.

Redaction is the last line of defence: code logs URLs through ``runback.core.urls.loggable``
(scheme, host and path), and the formatter masks what still looks like an API key, a
callback secret, an Ed25519 private key, a sealed value or a URL's query string.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["json", "text"]

_NO_IDS: Final[Mapping[str, object]] = MappingProxyType({})
_ids: ContextVar[Mapping[str, object]] = ContextVar("runback_log_ids", default=_NO_IDS)

MASK: Final = "***"
_SECRETS: Final = re.compile(
    # rb_ API keys (token_urlsafe), whsec_ secrets and whsk_ private keys (base64), and
    # values sealed at rest; a bare prefix (in a help text, say) is left alone.
    r"\b(rb_|whsec_|whsk_|sealed:v1:[\w-]+:)[A-Za-z0-9+/=_-]{8,}"
)
_URL_QUERY: Final = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")
_ACCESS_QUERY: Final = re.compile(r"\?\S*")


def bind(**ids: object) -> None:
    """Add ``ids`` (those not None) to every line this task, and the tasks it spawns, log
    from now on: for code that runs in a task of its own (an attempt, a run's execution)."""
    _ids.set(_with(ids))


def start(**ids: object) -> None:
    """Like ``bind``, for a task that starts work of its own: its ids replace those of the
    task that spawned it (an attempt spawned while a run ended is the delivery's work)."""
    _ids.set(_with(ids, _NO_IDS))


@contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Add ``ids`` (those not None) to every line logged inside the block."""
    token = _ids.set(_with(ids))
    try:
        yield
    finally:
        _ids.reset(token)


def current_ids() -> dict[str, str | int]:
    """The ids bound here now, as the lines show them."""
    return {name: _shown(value) for name, value in _ids.get().items()}


def _shown(value: object) -> str | int:
    return value if isinstance(value, int | str) else str(value)


def _with(ids: dict[str, object], base: Mapping[str, object] | None = None) -> dict[str, object]:
    # Kept as given (a UUID stays one): made text only when a line is written.
    merged = dict(_ids.get() if base is None else base)
    for name, value in ids.items():
        if value is not None:
            merged[name] = value
    return merged


def redact(text: str) -> str:
    """``text`` with secret shapes and URL query strings masked."""
    if "://" in text and "?" in text:
        text = _URL_QUERY.sub(rf"\1?{MASK}", text)
    return _SECRETS.sub(rf"\1{MASK}", text)


def _message(record: logging.LogRecord) -> str:
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        # uvicorn's access line: (client, method, full path, http version, status). The
        # query string may carry a receiver's token.
        args = list(record.args)
        if len(args) > 2 and isinstance(args[2], str):
            args[2] = _ACCESS_QUERY.sub(f"?{MASK}", args[2])
        return record.msg % tuple(args) if isinstance(record.msg, str) else record.getMessage()
    return record.getMessage()


def _utc(created: float) -> str:
    """``2026-12-06T14:52:55.852Z``."""
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(_message(record)),
        }
        for name, value in _ids.get().items():
            line[name] = _shown(value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [ids]``, for a terminal; redacted like JSON."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = _message(record)
        record.asctime = self.formatTime(record)
        text = self.formatMessage(record)
        ids = _ids.get()
        if ids:
            text += " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def default_format(stream: TextIO) -> LogFormat:
    """``text`` on a terminal, ``json`` anywhere else (a file, a pipe, a log collector)."""
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(*, level: str, format: LogFormat | None, stream: TextIO | None = None) -> None:
    """Send every logger's lines (uvicorn's too) to ``stream`` (stderr) in ``format``."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    chosen = format or default_format(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # Through the root handler, in the one format.
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
