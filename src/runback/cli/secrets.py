"""``runback secrets``: the organization's callback secrets and their rotation, through the
API (``--url``, ``--api-key``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from runback.cli.output import print_items
from runback.cli.remote import ApiKey, Json, Url, client_config, with_client
from runback.client import Secret

secrets_app = typer.Typer(
    help="Callback secrets: create, promote, disable (a rotation).", no_args_is_help=True
)

SecretId = Annotated[str, typer.Argument(help="The secret's id")]
COLUMNS = ("id", "type", "current", "label", "prefix", "created", "last used", "disabled")


class SecretType(StrEnum):
    HMAC = "hmac"
    ED25519 = "ed25519"


def _row(secret: Secret) -> tuple[object, ...]:
    return (
        secret.id,
        secret.type,
        secret.is_current,
        secret.label,
        secret.key_prefix,
        secret.created_at,
        secret.last_used_at,
        secret.disabled_at,
    )


def _show(secret: Secret, as_json: bool) -> None:
    print_items([secret], COLUMNS, _row, as_json=as_json)


@secrets_app.command("list")
def secrets_list(as_json: Json = False, url: Url = None, api_key: ApiKey = None) -> None:
    """List every secret, oldest first, disabled ones included."""
    found = with_client(client_config(url, api_key), lambda c: c.secrets.list())
    print_items(found, COLUMNS, _row, as_json=as_json)


@secrets_app.command("show")
def secrets_show(
    secret_id: SecretId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Show a secret (never an HMAC secret's value: it was shown once, at its creation)."""
    _show(with_client(client_config(url, api_key), lambda c: c.secrets.get(secret_id)), as_json)


@secrets_app.command("create")
def secrets_create(
    type: Annotated[SecretType, typer.Option("--type", help="What signs")] = SecretType.HMAC,
    label: Annotated[
        str | None, typer.Option(metavar="LABEL", help="A name to tell it apart")
    ] = None,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Create a secret (the first of its type becomes current). An HMAC secret is shown
    this once: give it to your receivers before promoting it."""
    config = client_config(url, api_key)
    made = with_client(config, lambda c: c.secrets.create(type=type.value, label=label))
    _show(made, as_json)
    if not as_json:
        typer.echo(f"\nsecret: {made.plain_secret or made.public_key}")


@secrets_app.command("promote")
def secrets_promote(
    secret_id: SecretId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Make a secret the one that signs for its type (the previous one stays active)."""
    _show(with_client(client_config(url, api_key), lambda c: c.secrets.promote(secret_id)), as_json)


@secrets_app.command("disable")
def secrets_disable(
    secret_id: SecretId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Disable a secret for good: it never signs again."""
    _show(with_client(client_config(url, api_key), lambda c: c.secrets.disable(secret_id)), as_json)
