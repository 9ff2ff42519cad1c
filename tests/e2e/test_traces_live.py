"""Traces across processes: ``runback api`` and ``runback worker`` on one PostgreSQL schema,
``RUNBACK_OTEL=on`` exporting over OTLP/HTTP (as the standard ``OTEL_*`` variables say) to a
loopback collector; one run's spans, made in two processes, are one trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from support.cluster import POSTGRES_URL, Cluster, postgres_schema
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


@dataclass(frozen=True)
class Exported:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str


class Collector:
    """An OTLP/HTTP trace endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sent = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in sent.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                self.spans.extend(
                    Exported(
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        service,
                    )
                    for span in scope.spans
                )
        return web.Response(status=200)

    def named(self, name: str) -> list[Exported]:
        return [span for span in self.spans if span.name == name]


@asynccontextmanager
async def _cluster(tmp_path: Path, collector_url: str) -> AsyncIterator[Cluster]:
    """An api process on a schema of its own, exporting to ``collector_url``."""
    async with postgres_schema() as schema:
        env = {
            "RUNBACK_DATABASE_URL": POSTGRES_URL,
            "RUNBACK_DATABASE_SCHEMA": schema,
            "RUNBACK_POLL_INTERVAL": "0.2",
            "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8",
            "RUNBACK_OTEL": "on",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
            "OTEL_SERVICE_NAME": "runback-e2e",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        with ExitStack() as stack:  # the processes stop before the schema goes
            yield Cluster(tmp_path, env, stack)


async def test_a_run_through_an_api_and_a_worker_process_is_one_trace(tmp_path: Path) -> None:
    collector = Collector()
    async with (
        LoopbackReceiver(collector.handle) as otlp,
        LoopbackReceiver(answer(200)) as receiver,
        _cluster(tmp_path, otlp.url) as cluster,
    ):
        cluster.add_worker()
        async with cluster.client() as client:
            submitted = await client.post(
                "/v1/models/runback/echo/runs",
                json={"input": {}, "callback_url": receiver.url_for("/h?token=t0k")},
                headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
            )
            assert submitted.status_code == 201, submitted.text

        async def attempt_exported() -> bool:
            return bool(collector.named("deliver.attempt"))

        await eventually(attempt_exported, timeout=20, what="the attempt's span")

    [submit] = collector.named("submit")
    [execute] = collector.named("execute")
    [deliver] = collector.named("deliver")
    [attempt] = collector.named("deliver.attempt")
    assert {s.trace_id for s in (submit, execute, deliver, attempt)} == {TRACE_ID}
    assert submit.parent_id == CLIENT_SPAN
    assert execute.parent_id == submit.span_id  # from the api process to the worker's
    assert deliver.parent_id == execute.span_id
    assert attempt.parent_id == deliver.span_id
    assert {s.service for s in collector.spans} == {"runback-e2e"}
