"""The ``runback`` command line.

``runback verify`` is part of the light install (``pip install runback``) and runs on the
standard library alone; every other command is the server's (``runback.cli.app``, on Typer)
and needs ``pip install 'runback[server]'``: without it, each says so in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from runback.cli.verify import EventOptions, StoredReceipt, UsageError, verify_main

LIGHT_HELP = """usage: runback verify --secret SECRET (--headers FILE --body FILE | --event ID)

Long-running jobs that call back. This is the light install: 'runback verify' checks a
callback's signature. The other commands (serve, api, worker, migrate, prune, receive, keys, orgs,
inbox, destinations, ordered, listen, trigger, runs, deliveries, secrets) need:
pip install 'runback[server]'"""


def main() -> None:
    """The console script's entry point."""
    args = sys.argv[1:]
    if args[:1] == ["verify"]:
        sys.exit(verify_main(args[1:], read_receipt=read_receipt))
    try:
        app = _app(args[0] if args else "")
    except ModuleNotFoundError as exc:
        missing = _server_dependency(exc)
        if not args or args[0] in ("-h", "--help"):
            print(LIGHT_HELP)
            sys.exit(0)
        print(
            f"runback: 'runback {args[0]}' is part of the server, which needs {missing}: "
            "pip install 'runback[server]'",
            file=sys.stderr,
        )
        sys.exit(2)
    app()


def read_receipt(options: EventOptions) -> StoredReceipt:
    """``runback verify --event``'s reading of the inbox: the server's, loaded only when
    asked for, so the light install says in one line what it lacks."""
    try:
        from runback.cli.receipts import read_receipt as read
    except ModuleNotFoundError as exc:
        missing = _server_dependency(exc)
        raise UsageError(
            f"--event reads runback receive's inbox, part of the server, which needs "
            f"{missing}: pip install 'runback[server]'"
        ) from None
    return read(options)


def _app(command: str) -> Callable[[], Any]:
    """The Typer app for ``command``: the client commands' own, which starts without the
    server's modules, or the whole one."""
    from runback.cli.remote_app import COMMANDS, client_app

    if command in COMMANDS:
        return client_app
    from runback.cli.app import app

    return app


def _server_dependency(exc: ModuleNotFoundError) -> str:
    """The server's dependency the light install lacks; a missing module of runback's own
    is a bug, raised again."""
    missing = (exc.name or "").split(".")[0]
    if missing in ("", "runback"):
        raise exc
    return missing
