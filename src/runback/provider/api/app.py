"""The HTTP API: a FastAPI app over the parts it is given, on the shared app base."""

from __future__ import annotations

from fastapi import FastAPI

from runback.dashboard.config import DashboardConfig
from runback.dashboard.provider import install_provider
from runback.metrics import PROVIDER_QUEUES, Backlogs
from runback.provider.api import (
    batches,
    callback_secrets,
    callback_tests,
    callbacks,
    files,
    headshots,
    listening,
    models,
    ordered_callbacks,
    runs,
    runware,
    streams,
)
from runback.provider.api.deps import ApiDeps
from runback.store import check_schema
from runback.web.app import base_app


def create_app(deps: ApiDeps, *, dashboard: DashboardConfig | None = None) -> FastAPI:
    """The API app, serving ``deps``, with the web dashboard at ``/dashboard``."""
    backlogs = Backlogs(deps.store, deps.clock, queues=PROVIDER_QUEUES)
    app = base_app("runback", ready=lambda: check_schema(deps.store.database), backlogs=backlogs)
    app.state.deps = deps
    app.include_router(runs.router)
    app.include_router(streams.router)
    app.include_router(batches.router)
    app.include_router(listening.router)  # before callbacks: /stream is not a delivery id
    app.include_router(callbacks.router)
    app.include_router(callback_secrets.router)
    app.include_router(callback_tests.router)
    app.include_router(ordered_callbacks.router)
    app.include_router(models.router)
    app.include_router(files.router)
    app.include_router(headshots.router)
    app.include_router(runware.router)
    install_provider(app, deps, dashboard or DashboardConfig())
    return app
