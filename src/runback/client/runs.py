"""Runs: submit, read, list, cancel, and follow one to its end.

``wait`` follows the run's stream (``GET /v1/runs/{id}/stream``), reconnecting with
``Last-Event-ID`` when the connection drops, and falls back to polling ``GET /v1/runs/{id}``
with exponential backoff when the server has no stream (an older server, or a proxy that
does not pass Server-Sent Events through).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any
from urllib.parse import quote

from runback.client.records import Run, RunEvent
from runback.client.sse import Decoder, Message
from runback.client.transport import Backoff, Transport
from runback.errors import (
    ApiError,
    RunbackError,
    TransportError,
    UnexpectedAnswerError,
    WaitTimeoutError,
)

POLL = Backoff(base=0.2, cap=5.0, jitter=0.2)
"""How ``wait`` polls when it cannot follow the stream."""


def model_path(model: str, kind: str) -> str:
    """``/v1/models/{owner}/{model}/{kind}``: the model's slash is part of the path."""
    return f"/v1/models/{quote(model, safe='/')}/{kind}"


def run_path(run_id: str, *rest: str) -> str:
    return "/".join(("/v1/runs", quote(run_id, safe=""), *rest))


def _event(message: Message) -> RunEvent:
    try:
        return RunEvent(message.event, int(message.id or ""), json.loads(message.data))
    except ValueError as exc:
        raise UnexpectedAnswerError(f"a stream message that is not a run's event: {exc}") from exc


def _no_stream(error: ApiError) -> bool:
    """Whether an error answered to the stream means this server has none (a route it does
    not know) rather than a problem with the run (``RUN_NOT_FOUND``)."""
    return (error.status == 404 and error.code == "NOT_FOUND") or error.status in (405, 501)


def _resumable(error: TransportError | ApiError) -> bool:
    """Whether a stream that failed so is worth asking for again: the connection went, or
    the server failed for a moment (not a ``501``: it has no stream)."""
    return isinstance(error, TransportError) or (error.status >= 500 and error.status != 501)


class Runs:
    """``client.runs``."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def create(
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
        """Submit a run; answered at once with it, ``queued``. Retried safely: with an
        ``Idempotency-Key`` (one is made when none is given) the server creates it once."""
        body: dict[str, Any] = {"input": dict(input)}
        optional = {
            "callback_url": callback_url,
            "metadata": None if metadata is None else dict(metadata),
            "client_ref": client_ref,
            "events": None if events is None else list(events),
            "output_url_ttl": output_url_ttl,
        }
        body |= {key: value for key, value in optional.items() if value is not None}
        key = idempotency_key or str(uuid.uuid4())
        answer = await self._transport.call(
            "POST", model_path(model, "runs"), body=body, headers={"Idempotency-Key": key}
        )
        return Run.from_json(answer)

    async def get(self, run_id: str) -> Run:
        """The run as it stands, with how its callback is doing."""
        return Run.from_json(await self._transport.call("GET", run_path(run_id)))

    async def list(
        self,
        *,
        status: Sequence[str] | None = None,
        model: str | None = None,
        client_ref: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Run]:
        """Every run of the organization that matches, newest first, fetched a page at a
        time as the iteration goes."""
        params: dict[str, str | list[str]] = {"limit": str(page_size)}
        if status:
            params["status"] = [str(value) for value in status]
        found = {
            "model": model,
            "client_ref": client_ref,
            "created_after": None if created_after is None else created_after.isoformat(),
            "created_before": None if created_before is None else created_before.isoformat(),
        }
        params |= {key: value for key, value in found.items() if value is not None}
        async for item in self._transport.pages("/v1/runs", params):
            yield Run.from_json(item)

    async def cancel(self, run_id: str) -> Run:
        """Cancel the run (an ended run is answered unchanged)."""
        return Run.from_json(await self._transport.call("POST", run_path(run_id, "cancel")))

    async def events(
        self, run_id: str, *, after: int | None = None
    ) -> AsyncGenerator[RunEvent, None]:
        """The run's events as they happen (after sequence ``after``), ending with its
        terminal event; a dropped connection is resumed where it stopped, up to ``retries``
        times in a row without a new event."""
        last = None if after is None else str(after)
        failures = 0
        while True:
            try:
                async for event in self._read_stream(run_id, last):
                    failures = 0
                    last = str(event.sequence)
                    yield event
                    if event.is_terminal:
                        return
                failed: RunbackError = TransportError(f"the stream of run {run_id} closed early")
            except (TransportError, ApiError) as error:
                if not _resumable(error):
                    raise
                failed = error
            if failures >= self._transport.retries:
                raise failed
            await self._transport.pause(failures)
            failures += 1

    async def _read_stream(self, run_id: str, last: str | None) -> AsyncIterator[RunEvent]:
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = last
        decoder = Decoder(last_id=last)
        async with self._transport.stream(run_path(run_id, "stream"), headers) as response:
            async for line in response.aiter_lines():
                message = decoder.feed(line)
                if message is not None and message.id is not None:
                    yield _event(message)

    async def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the caller's one deadline, as documented)
        stream: bool = True,
    ) -> Run:
        """The run once it has ended: followed on its stream (unless ``stream`` is false,
        or the server has none), else polled; ``WaitTimeoutError`` after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                if stream and await self._followed(run_id):
                    return await self.get(run_id)
                return await self._polled(run_id)
        except TimeoutError:
            if timeout is None:
                raise
            raise WaitTimeoutError(f"run {run_id} did not end within {timeout:g} s") from None

    async def _followed(self, run_id: str) -> bool:
        """Follow the stream to the run's end; False when the server has none, or it keeps
        failing (polling then says whether the server is there at all)."""
        try:
            async with aclosing(self.events(run_id)) as events:
                async for _ in events:
                    pass
        except TransportError:
            return False
        except ApiError as error:
            if _resumable(error) or _no_stream(error):
                return False
            raise
        return True

    async def _polled(self, run_id: str) -> Run:
        attempt = 0
        while not (run := await self.get(run_id)).ended:
            await asyncio.sleep(POLL.delay(attempt, self._transport.chance()))
            attempt += 1
        return run
