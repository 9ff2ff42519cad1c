"""``runback trigger <url>``: a signed ``test.ping`` to a URL now, through the API
(``POST /v1/callback-tests``: the same URL policy, resolver and signing as every callback),
and one line saying what came back and, when it failed, why."""

from __future__ import annotations

from typing import Annotated

import typer

from runback.cli.exits import Exit
from runback.cli.forwarding import where
from runback.cli.output import plain, print_json
from runback.cli.remote import ApiKey, Json, Url, client_config, with_client
from runback.client import AsyncClient
from runback.client.records import CallbackTest


def trigger(
    target: Annotated[str, typer.Argument(metavar="URL", help="Where to send the test ping")],
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Send a signed test.ping to URL now, signed with the organization's secrets, and say
    what came back: 0 if it answered 2xx, 6 if not (with why: dns_error, tls_error, timeout,
    connection_error, redirect, http_4xx, http_5xx, blocked_url)."""
    config = client_config(url, api_key)

    async def sent(client: AsyncClient) -> CallbackTest:
        return await client.deliveries.test(target)

    test = with_client(config, sent)
    if as_json:
        print_json(plain(test))
    else:
        typer.echo(describe(test))
    raise typer.Exit(int(Exit.OK if test.ok else Exit.HANDLER))


def describe(test: CallbackTest) -> str:
    """One line: the answer and its latency, or the failure and its detail."""
    shown = where(test.url)
    took = "" if test.latency_ms is None else f" in {test.latency_ms} ms"
    if test.ok:
        return f"ok: {shown} answered {test.status_code}{took}"
    said = f"HTTP {test.status_code}" if test.status_code is not None else "no answer"
    detail = f": {test.failure_detail}" if test.failure_detail else ""
    excerpt = f" ({test.response_excerpt[:120]!r})" if test.response_excerpt else ""
    return f"failed ({test.failure}): {shown}, {said}{took}{detail}{excerpt}"
