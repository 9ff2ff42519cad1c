"""runback: long-running jobs that call back.

Submit a run with a ``callback_url``; runback answers at once with its id, runs it in the
background and delivers a signed JSON callback when it ends: durably, with retries and a full
attempt log. This module holds the public names; everything else is private to the package.

Importing it stays light (no web framework, database driver or server code), so a consumer
with ``pip install runback`` can use ``runback.verify`` or ``runback.receiver`` alone, and the
API client (``runback.Client``, ``runback.AsyncClient``) loads httpx only when first used. The
names of the serving half (``pip install 'runback[server]'``) load on first use; the
settings of a server are ``runback.settings.Settings``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.states import DeliveryStatus, RunStatus
from runback.core.urlpolicy import UrlPolicy
from runback.core.verification import Verified, Verifier, verify
from runback.errors import (
    ApiError,
    ConfigError,
    ModelError,
    RunbackError,
    SchemaTooNewError,
    StoreError,
    TransportError,
    UrlRefusedError,
    VerificationError,
)

if TYPE_CHECKING:
    from runback.client import AsyncClient, Client
    from runback.provider.context import RunContext, SyncRunContext
    from runback.provider.registry import Model, ModelRegistry

_LAZY = {
    "AsyncClient": "runback.client",
    "Client": "runback.client",
    "Model": "runback.provider.registry",
    "ModelRegistry": "runback.provider.registry",
    "RunContext": "runback.provider.context",
    "SyncRunContext": "runback.provider.context",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runback' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"runback.{name} is part of the server, which needs {exc.name}: "
            "pip install 'runback[server]'",
            name=exc.name,
        ) from exc


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ApiError",
    "AsyncClient",
    "Client",
    "ConfigError",
    "DeliveryStatus",
    "Model",
    "ModelError",
    "ModelRegistry",
    "RetryPolicy",
    "RunContext",
    "RunStatus",
    "RunbackError",
    "SchemaTooNewError",
    "StoreError",
    "SyncRunContext",
    "TransportError",
    "UrlPolicy",
    "UrlRefusedError",
    "VerificationError",
    "Verified",
    "Verifier",
    "__version__",
    "verify",
]
