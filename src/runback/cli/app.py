"""The server's commands (``pip install 'runback[server]'``), on Typer.

Each builds the one ``Settings`` from its flags and ``RUNBACK_*`` variables, then hands its
groups down. Errors runback expects print as one line on stderr, never as a traceback, and
end with the exit status of their kind (``runback.cli.remote.Exit``).

Help is plain text (``rich_markup_mode=None``): rich markup would read the ``[env ...;
default]`` at the end of an option's help as a tag and drop it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from runback import __version__
from runback.cli.accounts import keys_app, orgs_app
from runback.cli.destinations import destinations_app
from runback.cli.exits import EXIT_CODES_HELP
from runback.cli.ordered import ordered_app
from runback.cli.prune import prune
from runback.cli.receipts import read_receipt
from runback.cli.receive import inbox_app, receive
from runback.cli.remote_app import add_client_commands
from runback.cli.serve import api, migrate, serve, worker
from runback.cli.verify import HELP as VERIFY_HELP
from runback.cli.verify import verify_main

app = typer.Typer(
    name="runback",
    help="Long-running jobs that call back.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"runback {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print runback's version and exit"
        ),
    ] = False,
) -> None:
    """Long-running jobs that call back."""


for command in (serve, api, worker, migrate, prune, receive):
    app.command(epilog=EXIT_CODES_HELP)(command)
for group, name in (
    (keys_app, "keys"),
    (orgs_app, "orgs"),
    (inbox_app, "inbox"),
    (destinations_app, "destinations"),
    (ordered_app, "ordered"),
):
    app.add_typer(group, name=name, epilog=EXIT_CODES_HELP)
add_client_commands(app)


@app.command(
    help=VERIFY_HELP,
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def verify(ctx: typer.Context) -> None:
    # Listed here for --help; ``runback.cli.main`` runs it before Typer loads (it is light).
    raise typer.Exit(verify_main(ctx.args, read_receipt=read_receipt))
