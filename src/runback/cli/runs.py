"""``runback runs``: the organization's runs, through the API (``--url``, ``--api-key``)."""

from __future__ import annotations

from typing import Annotated

import typer

from runback.cli.output import print_fields, print_items, print_json
from runback.cli.remote import ApiKey, Json, Url, client_config, with_client
from runback.client import AsyncClient, Delivery, Run

runs_app = typer.Typer(help="Runs, through the API.", no_args_is_help=True)

RunId = Annotated[str, typer.Argument(help="The run's id")]
RUN_COLUMNS = ("id", "model", "status", "created", "duration ms", "client ref")


def run_row(run: Run) -> tuple[object, ...]:
    return (run.id, run.model, run.status_code, run.created_at, run.duration_ms, run.client_ref)


def show_run(run: Run, as_json: bool) -> None:
    """A run as ``runs show`` prints it."""
    if as_json:
        print_json(run)
        return
    callback = run.callback
    print_fields(
        [
            ("id", run.id),
            ("model", run.model),
            ("status", run.status_code),
            ("created", run.created_at),
            ("started", run.started_at),
            ("completed", run.completed_at),
            ("duration ms", run.duration_ms),
            ("client ref", run.client_ref),
            ("batch", run.batch_id),
            ("callback url", run.callback_url),
            ("callback", None if callback is None else callback.status_code),
            ("callback attempts", None if callback is None else callback.attempts),
            ("failure", run.failure_code and f"{run.failure_code}: {run.failure_message}"),
        ]
    )


def show_delivery_made(delivery: Delivery, as_json: bool) -> None:
    """A new delivery (a redelivery) in one line, or as JSON."""
    if as_json:
        print_json(delivery)
    else:
        typer.echo(f"delivery {delivery.id} {delivery.status_code.value} ({delivery.event_key})")


@runs_app.command("list")
def runs_list(
    status: Annotated[
        list[str] | None,
        # Named: typer 0.27 names a list option after its metavar otherwise (--STATUS).
        typer.Option(
            "--status", metavar="STATUS", help="Only runs of this status; repeat for several"
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Only runs of this model")
    ] = None,
    client_ref: Annotated[
        str | None, typer.Option(metavar="REF", help="Only runs submitted with this client_ref")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, metavar="N", help="At most this many, newest first")
    ] = 20,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """List the organization's runs, newest first."""

    async def listed(client: AsyncClient) -> list[Run]:
        runs: list[Run] = []
        found = client.runs.list(
            status=status, model=model, client_ref=client_ref, page_size=min(limit, 100)
        )
        async for run in found:
            runs.append(run)
            if len(runs) >= limit:
                break  # the pages after it are never asked for
        return runs

    runs = with_client(client_config(url, api_key), listed)
    print_items(runs, RUN_COLUMNS, run_row, as_json=as_json)


@runs_app.command("show")
def runs_show(
    run_id: RunId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Show a run and how its callback is doing."""
    show_run(with_client(client_config(url, api_key), lambda c: c.runs.get(run_id)), as_json)


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunId, as_json: Json = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Cancel a run (an ended run is shown unchanged)."""
    show_run(with_client(client_config(url, api_key), lambda c: c.runs.cancel(run_id)), as_json)


@runs_app.command("wait")
def runs_wait(
    run_id: RunId,
    timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS", help="Seconds to wait at most [no limit]; exit status 7 then"
        ),
    ] = None,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Wait for a run to end, following its stream, and show it."""
    config = client_config(url, api_key)
    show_run(with_client(config, lambda c: c.runs.wait(run_id, timeout=timeout)), as_json)


@runs_app.command("redeliver")
def runs_redeliver(
    run_id: RunId,
    result_id: Annotated[
        str | None, typer.Option(metavar="RESULT_ID", help="One of the run's results")
    ] = None,
    sequence: Annotated[
        int | None, typer.Option(metavar="N", help="One of the run's progress events")
    ] = None,
    as_json: Json = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Deliver an ended run's callback again (or one result's, or one event's)."""

    async def redeliver(client: AsyncClient) -> Delivery:
        return await client.deliveries.redeliver(run_id, result_id=result_id, sequence=sequence)

    show_delivery_made(with_client(client_config(url, api_key), redeliver), as_json)
