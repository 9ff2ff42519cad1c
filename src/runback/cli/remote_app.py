"""The client commands (``listen``, ``trigger``, ``runs``, ``deliveries``, ``secrets``) as
a Typer app of their own: ``runback.cli.main`` runs them without loading the server (its
database layer, its web framework), so they start in a fraction of the time.
``runback.cli.app`` adds the same commands to the full app, for ``--help`` and completion."""

from __future__ import annotations

import typer

from runback.cli.deliveries import deliveries_app
from runback.cli.exits import EXIT_CODES_HELP
from runback.cli.listen import listen
from runback.cli.runs import runs_app
from runback.cli.secrets import secrets_app
from runback.cli.trigger import trigger

COMMANDS = frozenset({"listen", "trigger", "runs", "deliveries", "secrets"})
"""The first arguments ``runback.cli.main`` hands to this app."""


def add_client_commands(app: typer.Typer) -> None:
    """Add the client commands to ``app``."""
    app.command(epilog=EXIT_CODES_HELP)(listen)
    app.command(epilog=EXIT_CODES_HELP)(trigger)
    for group, name in (
        (runs_app, "runs"),
        (deliveries_app, "deliveries"),
        (secrets_app, "secrets"),
    ):
        app.add_typer(group, name=name, epilog=EXIT_CODES_HELP)


client_app = typer.Typer(
    name="runback",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
add_client_commands(client_app)
