"""``runback listen``: the organization's callback deliveries as they are made, on a local
or a remote runback, forwarded to a handler on this machine (no tunnel: the connection goes
out from here), or one stored delivery replayed.

Each delivery is one line (or one JSON line); its exact bytes go to ``--forward-to`` with
headers the server signed just now, so the handler verifies them as it would a real
callback. A dropped stream is resumed where it stopped; Ctrl-C ends it with status 0.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer

from runback.cli.exits import Exit
from runback.cli.forwarding import Forwarded, forward, line, record
from runback.cli.remote import ApiKey, Json, Url, client_config, stop, with_client
from runback.client import AsyncClient, DeliveryMessage
from runback.config import ClientConfig
from runback.errors import ApiError, TransportError

RECONNECT_SECONDS = 2.0
"""The pause before following again a stream the client could not resume."""
DEFAULT_TIMEOUT = 10.0

ForwardTo = Annotated[
    str | None,
    typer.Option(metavar="URL", help="The local handler each delivery is POSTed to, e.g. "
                 "http://localhost:3000/webhook [none: only print]"),
]  # fmt: skip


def _say(message: DeliveryMessage, forwarded: Forwarded | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record(message, forwarded)), flush=True)
    else:
        print(line(message, forwarded, datetime.now(UTC)), flush=True)


def listen(
    forward_to: ForwardTo = None,
    url_prefix: Annotated[
        str | None,
        typer.Option(metavar="PREFIX", help="Only deliveries to callback URLs starting with this"),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Only deliveries of runs of this model")
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            metavar="DELIVERY_ID",
            help="Forward this stored delivery once, signed now, and exit: 0 if the handler "
            "answered 2xx, 6 if not",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="Seconds the handler has to answer")
    ] = DEFAULT_TIMEOUT,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Follow the organization's callback deliveries as they are made, print a line for
    each, and forward its exact bytes, freshly signed, to --forward-to."""
    if forward_to is not None and not forward_to.startswith(("http://", "https://")):
        raise stop(
            f"--forward-to must be an http:// or https:// URL, not {forward_to!r}", Exit.USAGE
        )
    config = client_config(url, api_key)
    if replay is not None:
        if forward_to is None:
            raise stop("--replay needs --forward-to: where to send it", Exit.USAGE)
        _replay(replay, forward_to, timeout, as_json, config)
        return
    filters = "".join(
        f", {name} {value}"
        for name, value in (("url prefix", url_prefix), ("model", model))
        if value
    )
    target = f", forwarding to {forward_to}" if forward_to else ""
    typer.echo(f"runback: listening to {config.url}{filters}{target}; Ctrl-C to stop", err=True)
    since = datetime.now(UTC)

    async def follow(client: AsyncClient) -> None:
        async with httpx.AsyncClient(timeout=timeout) as http:
            await _follow(client, http, forward_to, as_json, url_prefix, model, since)

    with_client(config, follow, interrupted=Exit.OK)


async def _follow(
    client: AsyncClient,
    http: httpx.AsyncClient,
    forward_to: str | None,
    as_json: bool,
    url_prefix: str | None,
    model: str | None,
    since: datetime,
) -> None:
    last: str | None = None
    while True:
        stream = client.deliveries.stream(
            url_prefix=url_prefix, model=model, since=since, last_event_id=last
        )
        try:
            async for message in stream:
                last = message.cursor or last
                forwarded = None if forward_to is None else await forward(http, forward_to, message)
                _say(message, forwarded, as_json)
        except (TransportError, ApiError) as error:
            if isinstance(error, ApiError) and error.status < 500:
                raise
            typer.echo(f"runback: the stream dropped ({error}); reconnecting", err=True)
            await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            await stream.aclose()


def _replay(
    delivery_id: str, forward_to: str, timeout: float, as_json: bool, config: ClientConfig
) -> None:
    async def replayed(client: AsyncClient) -> tuple[DeliveryMessage, Forwarded]:
        message = await client.deliveries.message(delivery_id)
        async with httpx.AsyncClient(timeout=timeout) as http:
            return message, await forward(http, forward_to, message)

    message, forwarded = with_client(config, replayed)
    _say(message, forwarded, as_json)
    raise typer.Exit(int(Exit.OK if forwarded.ok else Exit.HANDLER))
