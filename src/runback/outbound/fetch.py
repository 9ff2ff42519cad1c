"""One guarded GET, for the model input fetcher and the receiver's output copier.

Both read a URL someone else gave: it passes the URL policy (and the session's resolver
checks the addresses its name resolves to), no redirect is followed, the whole exchange has a
deadline, and anything but a ``200`` is a failure. Each failure is one ``FetchFailedError``
whose message names the cause, ready for a run's ``failure_detail`` or a copy's
``last_error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from yarl import URL

from runback.core.urlpolicy import UrlPolicy
from runback.errors import UrlRefusedError
from runback.outbound.sender import classify


class FetchFailedError(Exception):
    """A guarded GET that gave no usable answer; the message says why."""


@asynccontextmanager
async def guarded_get(
    session: aiohttp.ClientSession, url: str, *, url_policy: UrlPolicy, seconds: float
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The ``200`` answer to ``GET url``, to read within ``seconds`` of the start; a
    ``FetchFailedError`` otherwise, also when reading the body fails or runs out of time."""
    try:
        url_policy.check(url)
    except UrlRefusedError as exc:
        raise FetchFailedError(str(exc)) from None
    try:
        async with session.get(
            URL(url, encoded=True),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            if response.status != 200:
                raise FetchFailedError(f"the URL answered HTTP {response.status}")
            yield response
    except TimeoutError:
        raise FetchFailedError(f"fetching took over {seconds:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        kind, message = classify(exc)  # names DNS failures and addresses the guard refused
        raise FetchFailedError(f"fetching failed ({kind}): {message}") from None
