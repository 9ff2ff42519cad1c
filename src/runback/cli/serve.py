"""``runback serve`` (all in one), ``runback api`` and ``runback worker`` (scaled out), and
``runback migrate``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from runback.cli.common import (
    DataDir,
    LogFormat,
    fail,
    run,
    say,
    settings_from,
    setup_logging,
    with_store,
)
from runback.errors import RunbackError
from runback.models import register_builtins
from runback.provider.discovery import load_models
from runback.provider.registry import ModelRegistry
from runback.provider.server import Roles
from runback.provider.server import serve as serve_forever
from runback.store import Store, head_revision
from runback.tracing import configured as configured_tracing

Host = Annotated[
    str | None, typer.Option(help="Address to listen on [env RUNBACK_HOST; 127.0.0.1]")
]
Port = Annotated[
    int | None, typer.Option(help="Port to listen on, 0 for any [env RUNBACK_PORT; 8000]")
]
CallbackAllow = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated CIDRs and host names that callbacks may reach although "
        "internal [env RUNBACK_CALLBACK_ALLOW]"
    ),
]
AccessLog = Annotated[bool | None, typer.Option("--access-log", help="Log every request")]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--models", help="A module whose models to serve; repeat for several [env RUNBACK_MODELS]"
    ),
]


def _serve(roles: Roles, **flags: object) -> None:
    models = flags.pop("models")
    settings = settings_from(**flags, models=tuple(models) if models else None)  # type: ignore[arg-type]
    setup_logging(settings)
    registry = register_builtins(ModelRegistry())
    try:
        loaded = load_models(registry, settings.models)
    except RunbackError as exc:
        raise fail(str(exc)) from None
    if loaded:
        logging.getLogger("runback").info("models from %s", ", ".join(loaded))
    try:
        tracing = configured_tracing(enabled=settings.otel)
    except RunbackError as exc:
        raise fail(str(exc)) from None
    try:
        run(serve_forever(settings.config(), registry=registry, say=say, roles=roles,
                          tracing=tracing))  # fmt: skip
    finally:
        tracing.shutdown()


def serve(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    callback_allow: CallbackAllow = None,
    access_log: AccessLog = None,
    models: Models = None,
    log_format: LogFormat = None,
) -> None:
    """Serve the API, run models and deliver callbacks, in one process."""
    _serve(Roles(), host=host, port=port, data_dir=data_dir, callback_allow=callback_allow,
           access_log=access_log, models=models, log_format=log_format)  # fmt: skip


def api(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    callback_allow: CallbackAllow = None,
    access_log: AccessLog = None,
    models: Models = None,
    log_format: LogFormat = None,
) -> None:
    """Serve the HTTP API only; workers elsewhere run the models and deliver callbacks."""
    _serve(Roles(executor=False, dispatcher=False), host=host, port=port, data_dir=data_dir,
           callback_allow=callback_allow, access_log=access_log, models=models,
           log_format=log_format)  # fmt: skip


def worker(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    callback_allow: CallbackAllow = None,
    models: Models = None,
    executor: Annotated[bool, typer.Option(help="Run models")] = True,
    dispatcher: Annotated[bool, typer.Option(help="Deliver callbacks")] = True,
    log_format: LogFormat = None,
) -> None:
    """Run models and deliver callbacks (with /healthz and /readyz on --port)."""
    if not executor and not dispatcher:
        raise fail("a worker with --no-executor and --no-dispatcher would do nothing")
    _serve(Roles(api=False, executor=executor, dispatcher=dispatcher), host=host, port=port,
           data_dir=data_dir, callback_allow=callback_allow, access_log=None,
           models=models, log_format=log_format)  # fmt: skip


def migrate(data_dir: DataDir = None) -> None:
    """Migrate the database to this runback's schema (for deploys with automatic migration
    off)."""
    settings = settings_from(data_dir=data_dir, auto_migrate=True)

    async def migrated(_store: Store, _now: datetime) -> str:
        return head_revision()

    with MigrationBar() as bar:
        revision = run(with_store(settings, migrated, progress=bar))
    typer.echo(f"the database is at schema revision {revision}")


class MigrationBar:
    """A progress bar on stderr over the revisions a migration applies (none when the
    database is at the head already)."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("migrating"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def step(self, revision: str, description: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1, description=f"revision {revision}")

    def __enter__(self) -> MigrationBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._progress.stop()
