"""Fetching a thin callback's full body for ``runback receive``, in the request.

Through the copier's session and URL policy (``runback.outbound.fetch``): no redirect, a
deadline, a size limit. Every failure is a ``ThinBodyError``, answered ``502`` so the sender
tries again; the checks of what came back are ``runback.receiver.thin``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from runback.core.urlpolicy import UrlPolicy
from runback.errors import ThinBodyError
from runback.outbound.fetch import FetchFailedError, guarded_get
from runback.receiver.thin import FETCH_TIMEOUT, MAX_FULL_BODY_BYTES

_CHUNK = 256 * 1024


def body_fetcher(
    session: aiohttp.ClientSession,
    *,
    url_policy: UrlPolicy,
    max_bytes: int = MAX_FULL_BODY_BYTES,
    seconds: float = FETCH_TIMEOUT,
) -> Callable[[str], Awaitable[bytes]]:
    """A function fetching a full body from its ``output_url``, at most ``max_bytes``."""

    async def fetch(url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with guarded_get(session, url, url_policy=url_policy, seconds=seconds) as got:
                async for chunk in got.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ThinBodyError(
                            f"the full body at the callback's output_url is over {max_bytes} bytes"
                        )
                    chunks.append(chunk)
        except FetchFailedError as exc:
            raise ThinBodyError(f"fetching the callback's output_url failed: {exc}") from None
        return b"".join(chunks)

    return fetch
