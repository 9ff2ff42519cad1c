"""``runback prune``: retention now, in the foreground, with a progress bar; what the
servers' pruners do every few minutes in the background."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from runback.blobs import BlobStore
from runback.cli.common import DataDir, run, settings_from, with_store
from runback.core.clock import SystemClock
from runback.pruner import Pruner
from runback.store import Store


def prune(
    data_dir: DataDir = None,
    inbox: Annotated[
        bool, typer.Option("--inbox", help="Prune runback receive's inbox instead")
    ] = False,
) -> None:
    """Delete now what has outlived the retention period (ended runs with their files,
    deliveries and attempts; or, --inbox, inbox events) [env RUNBACK_RETENTION_DAYS]."""
    settings = settings_from(data_dir=data_dir)
    config = settings.receiving_config() if inbox else settings.config()
    keep = config.retention.keep
    if keep is None:
        typer.echo("retention keeps everything (RUNBACK_RETENTION_DAYS=0): nothing to prune")
        return

    async def pruned(store: Store, _now: datetime) -> dict[str, int]:
        pruner = Pruner(
            store=store,
            blobs=BlobStore.from_config(config.blobs),
            clock=SystemClock(),
            retention=keep,
            batch=config.retention.batch,
            what="inbox" if inbox else "runs",
        )
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task("pruning")
            counts: dict[str, int] = {}

            def batch_done(name: str, rows: int) -> None:
                counts[name] = counts.get(name, 0) + rows
                said = ", ".join(f"{count} {kind}" for kind, count in counts.items())
                bar.update(task, description=f"pruning: {said}")

            return await pruner.prune(on_batch=batch_done)

    counts = run(with_store(settings, pruned, receiving=inbox))
    done = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    typer.echo(f"pruned {done} older than {keep.total_seconds() / 86400:g} days")
