"""OpenTelemetry traces from submit to callback, or nothing at all.

Spans: ``submit`` (the API route creating a run, continuing a client's ``traceparent``),
``execute`` (the model's execution, on whichever worker claims the run), ``deliver`` (the
callback's delivery, made when the run ends) and one ``deliver.attempt`` per attempt, on
whichever worker sends it, retries too. The context crosses processes through the store: the
W3C ``traceparent`` of ``submit`` is written on the run's row, that of ``deliver`` on the
delivery's row, and each next span is started as their child.

The ``otel`` extra (``opentelemetry-api`` and ``-sdk``) is optional: ``Tracing.off()`` (the
default everywhere) makes no span object at all, and runback never imports OpenTelemetry
unless told to trace. Attributes name hosts, never URLs: a callback URL's query carries
tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

from runback.core.records import Delivery
from runback.core.urls import host_of
from runback.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

TRACEPARENT: Final = "traceparent"
SERVICE_NAME: Final = "runback"

Attributes = Mapping[str, str | int | float | bool]


class SpanLike(Protocol):
    """What runback does with a span: add attributes as it learns them."""

    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    """The one span of tracing off: entering, setting and leaving it do nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN: Final = _NoSpan()


class Tracing:
    """Starts runback's spans with a tracer provider, or none (``Tracing.off()``)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer: Tracer | None = None
        if provider is not None:
            self._tracer = provider.get_tracer("runback")

    @classmethod
    def off(cls) -> Tracing:
        return cls(None)

    def span(
        self, name: str, *, parent: str | None = None, attributes: Attributes | None = None
    ) -> AbstractContextManager[SpanLike]:
        """A span around a block, child of the ``traceparent`` given, else of the current
        span; current inside the block. Off: a shared object that does nothing."""
        if self._tracer is None:
            return _NO_SPAN
        return self._started(name, parent, attributes)

    @contextmanager
    def _started(
        self, name: str, parent: str | None, attributes: Attributes | None
    ) -> Iterator[SpanLike]:
        assert self._tracer is not None
        context = _context_of(parent) if parent else None
        with self._tracer.start_as_current_span(
            name, context=context, attributes=attributes
        ) as span:
            yield span

    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the current span, to store beside the work it hands on
        (None when off, or when no span is current)."""
        if self._tracer is None:
            return None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier.get(TRACEPARENT)

    def shutdown(self) -> None:
        """Export what is pending and stop (at a process's end)."""
        if self.provider is not None:
            self.provider.shutdown()


def delivery_attributes(delivery: Delivery, *, attempt: int = 0) -> dict[str, str | int]:
    """What a ``deliver`` or ``deliver.attempt`` span says of its delivery: its ids and its
    destination's host, never its URL."""
    attributes: dict[str, str | int] = {
        "runback.delivery_id": str(delivery.id),
        "server.address": host_of(delivery.callback_url),
    }
    if attempt:
        attributes["runback.attempt"] = attempt
    if delivery.run_id is not None:
        attributes["runback.run_id"] = str(delivery.run_id)
    if delivery.batch_id is not None:
        attributes["runback.batch_id"] = str(delivery.batch_id)
    return attributes


def _context_of(traceparent: str) -> Any:
    """The OpenTelemetry context a ``traceparent`` names; an invalid one names none (the
    span then starts a trace of its own)."""
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent}, context=Context())


def sane_traceparent(value: str | None) -> str | None:
    """An incoming ``traceparent`` header worth keeping (W3C's shape, 55 characters), or None."""
    if value is None or len(value) != 55 or value.count("-") != 3:
        return None
    return value.lower()


def configured(*, enabled: bool) -> Tracing:
    """Tracing for a serving process: off, or spans batched to the exporter the standard
    ``OTEL_*`` variables configure (OTLP over HTTP by default); the service is ``runback``
    unless ``OTEL_SERVICE_NAME`` says otherwise."""
    if not enabled:
        return Tracing.off()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "RUNBACK_OTEL is on but OpenTelemetry is not installed: pip install 'runback[otel]'"
        ) from None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "RUNBACK_OTEL is on but no OTLP exporter is installed: "
            "pip install 'runback[otel]' (opentelemetry-exporter-otlp-proto-http)"
        ) from None
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the exporter its
    # OTEL_EXPORTER_OTLP_* variables: the standard configuration, read by the SDK at the edge.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider)
