"""``runback deliveries``: callback deliveries, their attempts, sending them again, and bulk
recovery with a progress bar, through the API (``--url``, ``--api-key``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runback.cli.exits import Exit
from runback.cli.output import print_fields, print_items, print_json, print_table
from runback.cli.remote import ApiKey, Json, Url, client_config, stop, with_client
from runback.cli.runs import show_delivery_made
from runback.client import AsyncClient, Delivery, Recovery

deliveries_app = typer.Typer(
    help="Callback deliveries and their attempts, through the API.", no_args_is_help=True
)

DeliveryId = Annotated[str, typer.Argument(help="The delivery's id")]
POLL_SECONDS = 0.5
"""How often ``recover`` asks how the recovery is doing."""
EVENT_PREFIX = "event:"
RESULT_PREFIX = "result:"
"""How a delivery's ``event_key`` names a progress event (``event:<sequence>``) or a result
(``result:<id>``); any other is the run's end."""


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2026-12-06T10:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _what(event_key: str) -> tuple[int | None, str | None]:
    """The progress event's sequence, or the result's id, a delivery's ``event_key`` names."""
    sequence = event_key.removeprefix(EVENT_PREFIX)
    if event_key.startswith(EVENT_PREFIX) and sequence.isdigit():
        return int(sequence), None
    if event_key.startswith(RESULT_PREFIX):
        return None, event_key.removeprefix(RESULT_PREFIX)
    return None, None


def _last_status(delivery: Delivery) -> int | None:
    return delivery.attempts[-1].status_code if delivery.attempts else None


@deliveries_app.command("list")
def deliveries_list(
    run_id: Annotated[str, typer.Argument(help="The run whose deliveries to list")],
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """List a run's callback deliveries, oldest first."""
    found = with_client(client_config(url, api_key), lambda c: c.deliveries.list(run_id))
    print_items(found, DELIVERY_COLUMNS, _delivery_row, as_json=as_json)


DELIVERY_COLUMNS = ("id", "event", "status", "attempts", "last http", "created", "automatic")


def _delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.id, d.event_key, d.status_code, d.attempt_count, _last_status(d), d.created_at,
        d.is_automatic,
    )  # fmt: skip


@deliveries_app.command("show")
def deliveries_show(
    delivery_id: DeliveryId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Show a delivery and each of its attempts."""
    d = with_client(client_config(url, api_key), lambda c: c.deliveries.get(delivery_id))
    if as_json:
        print_json(d)
        return
    print_fields(
        [
            ("id", d.id),
            ("run", d.run_id),
            ("batch", d.batch_id),
            ("event", d.event_key),
            ("webhook id", d.webhook_id),
            ("callback url", d.callback_url),
            ("status", d.status_code),
            ("attempts", f"{d.attempt_count} of {d.max_attempts or '-'}"),
            ("next attempt", d.next_attempt_at),
            ("failure", d.failure_reason_code),
            ("created", d.created_at),
        ]
    )
    typer.echo()
    print_table(
        ("attempt", "at", "http", "ms", "failure", "error"),
        (
            (a.attempt_number, a.created_at, a.status_code, a.response_time_ms,
             a.failure_reason_code, a.error_message)
            for a in d.attempts
        ),
    )  # fmt: skip


@deliveries_app.command("redeliver")
def deliveries_redeliver(
    delivery_id: DeliveryId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Send what a delivery sent again, as a new delivery of its run's (or batch's) callback
    or progress event."""

    async def redeliver(client: AsyncClient) -> Delivery:
        found = await client.deliveries.get(delivery_id)
        if found.run_id is None and found.batch_id is not None:
            return await client.batches.redeliver(found.batch_id)
        if found.run_id is None:
            raise stop(f"delivery {delivery_id} is not a run's nor a batch's", Exit.REFUSED)
        sequence, result = _what(found.event_key or "")
        return await client.deliveries.redeliver(found.run_id, sequence=sequence, result_id=result)

    show_delivery_made(with_client(client_config(url, api_key), redeliver), as_json)


@deliveries_app.command("recover")
def deliveries_recover(
    from_: Annotated[
        datetime,
        typer.Option(
            "--from",
            parser=_moment,
            metavar="TIME",
            help="Failed deliveries created from this time (ISO 8601; without an offset, UTC)",
        ),
    ],
    to: Annotated[
        datetime, typer.Option(parser=_moment, metavar="TIME", help="...up to this time, excluded")
    ],
    destination: Annotated[
        str | None, typer.Option(metavar="HOST:PORT", help="Only those to this host:port")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until none is pending")] = True,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Queue again every failed delivery created in [--from, --to), and follow them with a
    progress bar until none is pending (Ctrl-C stops following, not the recovery)."""

    async def recover(client: AsyncClient) -> Recovery:
        made = await client.deliveries.recover(from_, to, destination=destination)
        return await _followed(client, made) if wait else made

    recovery = with_client(client_config(url, api_key), recover)
    if as_json:
        print_json(recovery)
    else:
        typer.echo(
            f"recovery {recovery.id}: {recovery.queued} queued, {recovery.skipped} skipped; "
            f"{recovery.delivered} delivered, {recovery.failed} failed, "
            f"{recovery.pending} pending"
        )


async def _followed(client: AsyncClient, recovery: Recovery) -> Recovery:
    """Poll the recovery, a progress bar on stderr, until none of it is pending."""
    columns = (
        TextColumn("recovering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("recovery", total=recovery.queued, failed=0)
        while True:
            progress.update(
                task, completed=recovery.delivered + recovery.failed, failed=recovery.failed
            )
            if recovery.pending == 0:
                return recovery
            await asyncio.sleep(POLL_SECONDS)
            recovery = await client.deliveries.recovery(recovery.id)
