"""The server's commands (``pip install 'runback[server]'``), on Typer.

Each builds the one ``Settings`` from its flags and ``RUNBACK_*`` variables, then hands its
groups down. Errors runback expects print as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import typer

from runback.cli.accounts import keys_app, orgs_app
from runback.cli.destinations import destinations_app
from runback.cli.ordered import ordered_app
from runback.cli.receipts import read_receipt
from runback.cli.receive import inbox_app, receive
from runback.cli.serve import api, migrate, serve, worker
from runback.cli.verify import HELP as VERIFY_HELP
from runback.cli.verify import verify_main

app = typer.Typer(
    name="runback",
    help="Long-running jobs that call back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (serve, api, worker, migrate, receive):
    app.command()(command)
app.add_typer(keys_app, name="keys")
app.add_typer(orgs_app, name="orgs")
app.add_typer(inbox_app, name="inbox")
app.add_typer(destinations_app, name="destinations")
app.add_typer(ordered_app, name="ordered")


@app.command(
    help=VERIFY_HELP,
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def verify(ctx: typer.Context) -> None:
    # Listed here for --help; ``runback.cli.main`` runs it before Typer loads (it is light).
    raise typer.Exit(verify_main(ctx.args, read_receipt=read_receipt))
