"""``runback serve``."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from runback.cli.common import DataDir, fail, run, say, settings_from, setup_logging
from runback.errors import RunbackError
from runback.models import register_builtins
from runback.provider.discovery import load_models
from runback.provider.registry import ModelRegistry
from runback.provider.server import serve as serve_forever


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [env RUNBACK_HOST; 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on, 0 for any [env RUNBACK_PORT; 8000]")
    ] = None,
    data_dir: DataDir = None,
    callback_allow: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated CIDRs and host names that callbacks may reach although "
            "internal [env RUNBACK_CALLBACK_ALLOW]"
        ),
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log", help="Log every request")
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="A module whose models to serve; repeat for several [env RUNBACK_MODELS]",
        ),
    ] = None,
) -> None:
    """Serve the API, run models and deliver callbacks, in one process."""
    settings = settings_from(
        host=host,
        port=port,
        data_dir=data_dir,
        callback_allow=callback_allow,
        access_log=access_log,
        models=tuple(models) if models else None,
    )
    setup_logging(settings)
    registry = register_builtins(ModelRegistry())
    try:
        loaded = load_models(registry, settings.models)
    except RunbackError as exc:
        raise fail(str(exc)) from None
    if loaded:
        logging.getLogger("runback").info("models from %s", ", ".join(loaded))
    run(serve_forever(settings, registry=registry, say=say))
