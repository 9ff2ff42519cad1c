"""runback: long-running jobs that call back.

Submit a run with a ``callback_url``; runback answers at once with its id, runs it in the
background and delivers a signed JSON callback when it ends: durably, with retries and a full
attempt log. This module holds the public names; everything else is private to the package.
"""

from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.states import DeliveryStatus, RunStatus
from runback.core.urlpolicy import UrlPolicy
from runback.errors import (
    ApiError,
    ConfigError,
    ModelError,
    RunbackError,
    SchemaTooNewError,
    StoreError,
    UrlRefusedError,
)
from runback.provider.context import RunContext, SyncRunContext
from runback.provider.registry import Model, ModelRegistry
from runback.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ApiError",
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
    "Settings",
    "StoreError",
    "SyncRunContext",
    "UrlPolicy",
    "UrlRefusedError",
    "__version__",
]
