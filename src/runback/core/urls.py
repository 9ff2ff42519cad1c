"""A URL as it may be logged or traced: scheme, host and path, never its query.

Callback URLs often carry a token in their query string (``?token=...``), and a URL's user
info is a password: neither may reach a log line, a span or an error shown to an operator.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def loggable(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``; what cannot be parsed is not shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def host_of(url: str) -> str:
    """The host of ``url`` (empty when it has none, or cannot be parsed)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
