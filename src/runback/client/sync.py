"""``Client``: ``AsyncClient`` for code without an event loop.

It holds no logic: every method runs its ``AsyncClient`` twin on a private event loop in a
background thread and answers what it answers (iterators are bridged item by item), so the
two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from runback.client.asyncclient import DEFAULT_RETRIES, AsyncClient
from runback.client.records import (
    Batch,
    BatchItem,
    CallbackTest,
    Delivery,
    DeliveryMessage,
    Model,
    Recovery,
    Run,
    RunEvent,
    Secret,
)
from runback.client.transport import Backoff, Timeouts

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="runback-client", daemon=True
        )
        self._thread.start()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C): the call stops too
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_next(items))
                except StopAsyncIteration:
                    return
        finally:
            # Left unfinished: close it (its connection) now, unless the client is closed or
            # this runs on the loop's own thread, where the loop finalizes it.
            if self._loop.is_running() and threading.current_thread() is not self._thread:
                self.run(_aclose(items))

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def stopped(self) -> bool:
        return self._loop.is_closed()


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


async def _aclose(items: AsyncIterator[Any]) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


class Client:
    """runback's API, synchronously: the same calls as ``AsyncClient``, the same
    arguments, the same answers and errors. Use it as a context manager, or ``close()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | Timeouts = Timeouts(),
        retries: int = DEFAULT_RETRIES,
        backoff: Backoff = Backoff(),
        organization_id: str | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self._async = AsyncClient(
            base_url,
            api_key,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            organization_id=organization_id,
            chance=chance,
        )
        self._loop = _Loop()
        self.runs = _Runs(self._async, self._loop)
        self.batches = _Batches(self._async, self._loop)
        self.deliveries = _Deliveries(self._async, self._loop)
        self.secrets = _Secrets(self._async, self._loop)
        self.models = _Models(self._async, self._loop)

    def close(self) -> None:
        """Close the connections and stop the loop's thread (once; again does nothing)."""
        if not self._loop.stopped:
            self._loop.run(self._async.aclose())
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Part:
    def __init__(self, client: AsyncClient, loop: _Loop) -> None:
        self._client = client
        self._loop = loop


class _Runs(_Part):
    def create(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        callback_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        client_ref: str | None = None,
        events: Sequence[str] | None = None,
        output_url_ttl: int | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        return self._loop.run(
            self._client.runs.create(
                model,
                input,
                callback_url=callback_url,
                metadata=metadata,
                client_ref=client_ref,
                events=events,
                output_url_ttl=output_url_ttl,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, run_id: str) -> Run:
        return self._loop.run(self._client.runs.get(run_id))

    def list(
        self,
        *,
        status: Sequence[str] | None = None,
        model: str | None = None,
        client_ref: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[Run]:
        return self._loop.iterate(
            self._client.runs.list(
                status=status,
                model=model,
                client_ref=client_ref,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
            )
        )

    def cancel(self, run_id: str) -> Run:
        return self._loop.run(self._client.runs.cancel(run_id))

    def events(self, run_id: str, *, after: int | None = None) -> Iterator[RunEvent]:
        return self._loop.iterate(self._client.runs.events(run_id, after=after))

    def wait(self, run_id: str, *, timeout: float | None = None, stream: bool = True) -> Run:
        return self._loop.run(self._client.runs.wait(run_id, timeout=timeout, stream=stream))


class _Batches(_Part):
    def create(
        self,
        model: str,
        inputs: Sequence[Mapping[str, Any]],
        *,
        callback_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        return self._loop.run(
            self._client.batches.create(
                model,
                inputs,
                callback_url=callback_url,
                metadata=metadata,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, batch_id: str) -> Batch:
        return self._loop.run(self._client.batches.get(batch_id))

    def items(self, batch_id: str, *, page_size: int = 100) -> Iterator[BatchItem]:
        return self._loop.iterate(self._client.batches.items(batch_id, page_size=page_size))

    def cancel(self, batch_id: str) -> Batch:
        return self._loop.run(self._client.batches.cancel(batch_id))

    def deliveries(self, batch_id: str) -> list[Delivery]:
        return self._loop.run(self._client.batches.deliveries(batch_id))

    def redeliver(self, batch_id: str) -> Delivery:
        return self._loop.run(self._client.batches.redeliver(batch_id))


class _Deliveries(_Part):
    def list(self, run_id: str) -> list[Delivery]:
        return self._loop.run(self._client.deliveries.list(run_id))

    def get(self, delivery_id: str) -> Delivery:
        return self._loop.run(self._client.deliveries.get(delivery_id))

    def redeliver(
        self, run_id: str, *, result_id: str | None = None, sequence: int | None = None
    ) -> Delivery:
        return self._loop.run(
            self._client.deliveries.redeliver(run_id, result_id=result_id, sequence=sequence)
        )

    def test(self, url: str) -> CallbackTest:
        return self._loop.run(self._client.deliveries.test(url))

    def recover(self, from_: datetime, to: datetime, *, destination: str | None = None) -> Recovery:
        return self._loop.run(self._client.deliveries.recover(from_, to, destination=destination))

    def recovery(self, recovery_id: str) -> Recovery:
        return self._loop.run(self._client.deliveries.recovery(recovery_id))

    def stream(
        self,
        *,
        url_prefix: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        last_event_id: str | None = None,
    ) -> Iterator[DeliveryMessage]:
        return self._loop.iterate(
            self._client.deliveries.stream(
                url_prefix=url_prefix, model=model, since=since, last_event_id=last_event_id
            )
        )

    def message(self, delivery_id: str) -> DeliveryMessage:
        return self._loop.run(self._client.deliveries.message(delivery_id))


class _Secrets(_Part):
    def create(self, *, type: str = "hmac", label: str | None = None) -> Secret:
        return self._loop.run(self._client.secrets.create(type=type, label=label))

    def list(self) -> list[Secret]:
        return self._loop.run(self._client.secrets.list())

    def get(self, secret_id: str) -> Secret:
        return self._loop.run(self._client.secrets.get(secret_id))

    def promote(self, secret_id: str) -> Secret:
        return self._loop.run(self._client.secrets.promote(secret_id))

    def rename(self, secret_id: str, label: str) -> Secret:
        return self._loop.run(self._client.secrets.rename(secret_id, label))

    def disable(self, secret_id: str) -> Secret:
        return self._loop.run(self._client.secrets.disable(secret_id))


class _Models(_Part):
    def list(self) -> list[Model]:
        return self._loop.run(self._client.models.list())
