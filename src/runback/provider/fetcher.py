"""Fetching a model's input URLs: through the URL policy, within size and time limits.

A model that fetches an image by URL is an outbound call like a callback: it passes the same
guard (internal addresses refused unless allowed; the shared session's resolver checks the
addresses a name resolves to), follows no redirect, and stops reading at the size limit.
Failures fail the run with ``fetch_failed`` and say why.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from runback.core.urlpolicy import UrlPolicy
from runback.errors import ModelError, UrlRefusedError
from runback.outbound.sender import classify


class AiohttpFetcher:
    """The real fetcher, sharing the server's aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, *, url_policy: UrlPolicy) -> None:
        self._session = session
        self._url_policy = url_policy

    async def fetch(self, url: str, *, max_bytes: int, seconds: float) -> bytes:
        try:
            self._url_policy.check(url)
        except UrlRefusedError as exc:
            raise ModelError(f"cannot fetch {url}: {exc}", code="fetch_failed") from None
        try:
            async with self._session.get(
                URL(url, encoded=True),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                if response.status != 200:
                    raise ModelError(
                        f"fetching {url} answered HTTP {response.status}", code="fetch_failed"
                    )
                if (response.content_length or 0) > max_bytes:
                    raise _too_large(url, max_bytes)
                body = await response.content.read(max_bytes + 1)
                while len(body) <= max_bytes and (chunk := await response.content.read(65536)):
                    body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, max_bytes)
                return body
        except TimeoutError:
            message = f"fetching {url} took over {seconds:g} s"
            raise ModelError(message, code="fetch_failed") from None
        except aiohttp.ClientError as exc:
            kind, message = classify(exc)  # names DNS failures and addresses the guard refused
            raise ModelError(
                f"fetching {url} failed ({kind}): {message}", code="fetch_failed"
            ) from None


def _too_large(url: str, max_bytes: int) -> ModelError:
    return ModelError(f"{url} is over the limit of {max_bytes} bytes", code="fetch_failed")
