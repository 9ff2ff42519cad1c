"""A Python client for runback's API: ``AsyncClient``, and ``Client``, its synchronous
facade. Part of the light install (``pip install runback``): it needs only ``httpx``.

Errors are those of ``runback.errors``: an answered error is the ``ApiError`` subclass of
its status (``NotFoundError``, ``ValidationFailedError`` with field ``errors``...), with the
server's ``code`` and ``message``; no answer at all is a ``TransportError``.
"""

from runback.client.asyncclient import AsyncClient
from runback.client.records import (
    Attempt,
    Batch,
    BatchItem,
    CallbackSummary,
    Delivery,
    DeliveryMessage,
    Model,
    Recovery,
    Run,
    RunEvent,
    Secret,
)
from runback.client.sync import Client
from runback.client.transport import Backoff, Timeouts

__all__ = [
    "AsyncClient",
    "Attempt",
    "Backoff",
    "Batch",
    "BatchItem",
    "CallbackSummary",
    "Client",
    "Delivery",
    "DeliveryMessage",
    "Model",
    "Recovery",
    "Run",
    "RunEvent",
    "Secret",
    "Timeouts",
]
