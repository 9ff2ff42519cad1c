"""One trace from submit to callback: the real API app, executor and dispatcher on their own
loops, a real store (SQLite and PostgreSQL) carrying the trace context between them, a
loopback receiver, spans exported to OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runback.config import DeliveryConfig
from runback.core.clock import SystemClock
from runback.core.retry import RetryPolicy
from runback.core.urlpolicy import LOOPBACK_ALLOW, UrlPolicy
from runback.provider.api.app import create_app
from runback.store import Store
from runback.tracing import Tracing
from support.live import PUBLIC_URL, live_runtime
from support.receivers import LoopbackReceiver
from support.waiting import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
TOKEN = "s3cretTOKEN"


@dataclass
class Traced:
    client: httpx.AsyncClient
    receiver: LoopbackReceiver
    exporter: InMemorySpanExporter
    store: Store

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


@asynccontextmanager
async def traced(store: Store, tracing: Tracing | None = None) -> AsyncIterator[Traced]:
    """The serving half on the wall clock, traced into an in-memory exporter, and an API
    client; its receiver answers the first callback 500, the others 200."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = SystemClock()
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    key = await store.accounts.create_api_key([organization.id], now=clock.now())
    statuses = iter([500])

    async def fails_once(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=next(statuses, 200))

    delivery = DeliveryConfig(
        retry=RetryPolicy(delays=(0.1, 0.1), jitter=0.0),
        url_policy=UrlPolicy.from_allow_list(LOOPBACK_ALLOW),
        max_in_flight=8,
    )
    try:
        async with (
            LoopbackReceiver(fails_once) as receiver,
            live_runtime(store, delivery, tracing=tracing or Tracing(provider)) as runtime,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(runtime.api)),
                base_url=PUBLIC_URL,
                headers={"Authorization": f"Bearer {key}"},
            ) as client,
        ):
            yield Traced(client, receiver, exporter, store)
    finally:
        provider.shutdown()


async def _submit(traced: Traced, headers: dict[str, str] | None = None) -> str:
    submitted = await traced.client.post(
        "/v1/models/runback/echo/runs",
        json={"input": {"n": 1}, "callback_url": traced.receiver.url_for(f"/h?token={TOKEN}")},
        headers=headers,
    )
    assert submitted.status_code == 201, submitted.text
    run_id: str = submitted.json()["id"]
    return run_id


async def _two_attempts(traced: Traced) -> None:
    async def exported() -> bool:
        return len(traced.spans("deliver.attempt")) == 2

    await eventually(exported, what="both attempts' spans are exported")


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _values(spans: Sequence[ReadableSpan]) -> list[Any]:
    return [value for span in spans for value in (span.attributes or {}).values()]


async def test_one_trace_spans_submit_execute_deliver_and_each_attempt(store: Store) -> None:
    async with traced(store) as t:
        run_id = await _submit(t, {"traceparent": CLIENT_TRACEPARENT})
        await _two_attempts(t)
        [submit], [execute], [deliver] = t.spans("submit"), t.spans("execute"), t.spans("deliver")
        attempts = sorted(t.spans("deliver.attempt"), key=lambda s: s.start_time or 0)
        stored = await store.runs.get(run_id_of(run_id))

    everything = [submit, execute, deliver, *attempts]
    assert {span.context.trace_id for span in everything} == {int(TRACE_ID, 16)}
    assert _parent(submit) == int(CLIENT_SPAN, 16)  # the client's trace continues
    assert _parent(execute) == submit.context.span_id  # across the store: the runs row
    assert _parent(deliver) == execute.context.span_id
    # Across the store again: the retry was claimed from the deliveries row.
    assert [_parent(attempt) for attempt in attempts] == [deliver.context.span_id] * 2
    assert stored is not None
    assert stored.traceparent is not None
    assert f"{submit.context.span_id:016x}" in stored.traceparent
    assert [a.attributes and a.attributes["runback.attempt"] for a in attempts] == [1, 2]
    assert [a.attributes and a.attributes["http.response.status_code"] for a in attempts] == [
        500,
        200,
    ]
    for span in (deliver, *attempts):
        assert span.attributes is not None
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["runback.run_id"] == run_id
    assert execute.attributes is not None
    assert execute.attributes["runback.run_id"] == run_id
    assert not any(TOKEN in str(value) or "?" in str(value) for value in _values(everything))


async def test_a_submission_without_traceparent_starts_a_trace(store: Store) -> None:
    async with traced(store) as t:
        await _submit(t, {"traceparent": "not-a-traceparent"})
        await _two_attempts(t)
        [submit], [execute] = t.spans("submit"), t.spans("execute")

    assert submit.parent is None
    assert execute.context.trace_id == submit.context.trace_id != int(TRACE_ID, 16)


async def test_tracing_off_makes_no_span_and_stores_no_context(store: Store) -> None:
    async with traced(store, Tracing.off()) as t:
        run_id = await _submit(t, {"traceparent": CLIENT_TRACEPARENT})

        async def delivered() -> bool:
            return len(t.receiver.requests) == 2

        await eventually(delivered, what="the callback, retried once")
        stored = await store.runs.get(run_id_of(run_id))
        assert stored is not None
        deliveries = await store.deliveries.for_run(
            stored.id, organization_id=stored.organization_id
        )

    assert t.exporter.get_finished_spans() == ()
    assert stored.traceparent is None
    assert [delivery.traceparent for delivery, _ in deliveries] == [None]


def run_id_of(text: str) -> UUID:
    return UUID(text)


async def test_a_redelivery_joins_its_runs_trace(store: Store) -> None:
    async with traced(store) as t:
        run_id = await _submit(t, {"traceparent": CLIENT_TRACEPARENT})
        await _two_attempts(t)
        again = await t.client.post(f"/v1/runs/{run_id}/callback-redeliveries")
        assert again.status_code in (200, 201, 202), again.text

        async def third() -> bool:
            return len(t.spans("deliver.attempt")) == 3

        await eventually(third, what="the redelivery's attempt")
        [submit] = t.spans("submit")
        _, redelivered = sorted(t.spans("deliver"), key=lambda s: s.start_time or 0)
        last = max(t.spans("deliver.attempt"), key=lambda s: s.start_time or 0)

    assert redelivered.context.trace_id == int(TRACE_ID, 16)
    assert _parent(redelivered) == submit.context.span_id
    assert _parent(last) == redelivered.context.span_id
