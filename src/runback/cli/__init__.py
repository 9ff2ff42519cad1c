"""The ``runback`` command line.

Each command builds the one ``Settings`` from its flags and ``RUNBACK_*`` variables, then
hands it down. Errors runback expects print as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import typer

from runback.cli.accounts import keys_app, orgs_app
from runback.cli.destinations import destinations_app
from runback.cli.receive import inbox_app, receive
from runback.cli.serve import api, migrate, serve, worker

app = typer.Typer(
    name="runback",
    help="Long-running jobs that call back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(serve)
app.command()(api)
app.command()(worker)
app.command()(migrate)
app.command()(receive)
app.add_typer(keys_app, name="keys")
app.add_typer(orgs_app, name="orgs")
app.add_typer(inbox_app, name="inbox")
app.add_typer(destinations_app, name="destinations")


def main() -> None:
    """The console script's entry point."""
    app()
