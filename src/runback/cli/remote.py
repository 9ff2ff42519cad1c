"""What the client commands share (``runs``, ``deliveries``, ``secrets``, ``listen``): the
API they reach, the key they act with, and one exit status per kind of failure.

They talk to a runback API through ``runback.AsyncClient``, local or remote, never to a
database: ``--url``/``RUNBACK_URL`` and ``--api-key``/``RUNBACK_API_KEY`` are read into the
one ``Settings`` like every other flag. The key is never printed, and help shows the
variable's name, never its value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Annotated, TypeVar

import typer
import uvloop

from runback.client import AsyncClient
from runback.config import ClientConfig
from runback.errors import (
    ApiError,
    PermissionDeniedError,
    RunbackError,
    TransportError,
    UnauthorizedError,
    UnexpectedAnswerError,
    WaitTimeoutError,
)
from runback.settings import load_settings

T = TypeVar("T")


class Exit(IntEnum):
    """The exit statuses of every command, one per kind of failure."""

    OK = 0
    REFUSED = 1
    """runback refused or failed the request (a 4xx other than below, a conflict)."""
    USAGE = 2
    """A bad flag, argument or setting; no API key."""
    AUTH = 3
    """The key is unknown, revoked, or not allowed this (401, 403)."""
    NOT_FOUND = 4
    """No such run, delivery or secret (404)."""
    UNREACHABLE = 5
    """No answer from the API, a 5xx, or an answer that is not runback's."""
    HANDLER = 6
    """``listen --replay``: the handler did not answer 2xx (or not at all)."""
    TIMEOUT = 7
    """``runs wait --timeout``: the run had not ended."""
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit status: 0 done; 1 refused by runback; 2 usage (a bad flag or setting); "
    "3 authentication (key unknown, revoked or not allowed); 4 not found; 5 API unreachable "
    "or failing; 6 listen --replay: the handler did not answer 2xx; 7 runs wait timed out; "
    "130 interrupted."
)

Url = Annotated[
    str | None,
    typer.Option(
        "--url", help="The runback API, local or remote [env RUNBACK_URL; http://127.0.0.1:8000]"
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="The API key to act with; prefer the variable, a flag shows in process listings "
        "[env RUNBACK_API_KEY]",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's objects as JSON")]


def exit_status(error: RunbackError) -> Exit:
    """The exit status an error stands for."""
    if isinstance(error, UnauthorizedError | PermissionDeniedError):
        return Exit.AUTH
    if isinstance(error, TransportError | UnexpectedAnswerError):
        return Exit.UNREACHABLE
    if isinstance(error, WaitTimeoutError):
        return Exit.TIMEOUT
    if isinstance(error, ApiError):
        if error.status == 404:
            return Exit.NOT_FOUND
        if error.status >= 500:
            return Exit.UNREACHABLE
    return Exit.REFUSED


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
