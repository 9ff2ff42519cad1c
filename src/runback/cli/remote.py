"""What the client commands share (``runs``, ``deliveries``, ``secrets``, ``listen``): the
API they reach, the key they act with, and one exit status per kind of failure.

They talk to a runback API through ``runback.AsyncClient``, local or remote, never to a
database: ``--url``/``RUNBACK_URL`` and ``--api-key``/``RUNBACK_API_KEY`` are read into the
one ``Settings`` like every other flag. The key is never printed, and help shows the
variable's name, never its value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
import uvloop

from runback.cli.exits import Exit, exit_status
from runback.client import AsyncClient
from runback.config import ClientConfig
from runback.errors import ApiError, RunbackError
from runback.settings import load_settings

T = TypeVar("T")


Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="The runback API, local or remote [env RUNBACK_URL; http://127.0.0.1:8000]",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help="The API key to act with; prefer the variable, a flag shows in process listings "
        "[env RUNBACK_API_KEY]",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's objects as JSON")]


def stop(message: str, status: Exit) -> typer.Exit:
    """Say ``message`` on one line; raise the answer to end with ``status``."""
    typer.echo(f"runback: {message}", err=True)
    return typer.Exit(int(status))


def client_config(url: str | None, api_key: str | None) -> ClientConfig:
    """The API and key, flags over variables; no key is a usage error, said at once."""
    try:
        config = load_settings(url=url, api_key=api_key).client_config()
    except RunbackError as exc:
        raise stop(str(exc), Exit.USAGE) from None
    if not config.api_key:
        raise stop(
            "no API key: set RUNBACK_API_KEY (or --api-key) to one from 'runback keys create'",
            Exit.USAGE,
        )
    return config


def with_client(
    config: ClientConfig,
    work: Callable[[AsyncClient], Awaitable[T]],
    *,
    interrupted: Exit = Exit.INTERRUPTED,
) -> T:
    """Do ``work`` with a client of the API; an error is one line and its exit status,
    Ctrl-C ends with ``interrupted``."""

    async def session() -> T:
        async with AsyncClient(config.url, config.api_key or "") as client:
            return await work(client)

    try:
        return uvloop.run(session())
    except RunbackError as exc:
        said = f"{exc.code}: {exc.message}" if isinstance(exc, ApiError) else str(exc)
        raise stop(f"{said} ({config.url})", exit_status(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(interrupted)) from None
