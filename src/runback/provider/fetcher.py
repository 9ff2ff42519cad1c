"""Fetching a model's input URLs: through the URL policy, within size and time limits.

A model that fetches an image by URL is an outbound call like a callback: it passes the same
guard (``runback.outbound.fetch``), follows no redirect, and stops reading at the size limit.
Failures fail the run with ``fetch_failed`` and say why.
"""

from __future__ import annotations

import aiohttp

from runback.core.urlpolicy import UrlPolicy
from runback.errors import ModelError
from runback.outbound.fetch import FetchFailedError, guarded_get


class AiohttpFetcher:
    """The real fetcher, sharing the server's aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, *, url_policy: UrlPolicy) -> None:
        self._session = session
        self._url_policy = url_policy

    async def fetch(self, url: str, *, max_bytes: int, seconds: float) -> bytes:
        try:
            async with guarded_get(
                self._session, url, url_policy=self._url_policy, seconds=seconds
            ) as response:
                if (response.content_length or 0) > max_bytes:
                    raise _too_large(url, max_bytes)
                body = await response.content.read(max_bytes + 1)
                while len(body) <= max_bytes and (chunk := await response.content.read(65536)):
                    body += chunk
        except FetchFailedError as exc:
            raise ModelError(f"cannot fetch {url}: {exc}", code="fetch_failed") from None
        if len(body) > max_bytes:
            raise _too_large(url, max_bytes)
        return body


def _too_large(url: str, max_bytes: int) -> ModelError:
    return ModelError(f"{url} is over the limit of {max_bytes} bytes", code="fetch_failed")
