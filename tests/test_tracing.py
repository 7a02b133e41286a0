"""OpenTelemetry tracing: policy events as span events, spans per attempt (issue #15)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode

import resilience as rs
from resilience.integrations.otel import OpenTelemetryTracing
from resilience.testing import FakeClock
from tests.docs_blocks import run_block

from .forms import checkpoint, run_async


class Down(Exception):
    """The upstream failed (its message quotes a secret, as real errors may)."""

    def __init__(self) -> None:
        super().__init__("down; Authorization: Bearer sk-abcdefghijklmnop")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("tests")


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> OpenTelemetryTracing:
    """The hook, installed globally for the test (the autouse fixture restores the hooks)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryTracing(tracer_provider=provider)
    rs.add_hook(hook)
    return hook


def flaky(failures: int) -> Any:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Down
        return "ok"

    return fn


def the(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


def test_retries_become_events_of_the_current_span(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """Each retry is a span event with the policy's name and the verdict's kind (issue #15)."""
    retry = rs.Retry(on=rs.Rule(exception=Down, kind="server"), name="api", clock=FakeClock())
    with tracer.start_as_current_span("request"):
        assert retry(flaky(2))() == "ok"
    got = events(the(exporter, "request"))
    assert [name for name, _ in got] == ["resilience.retry_scheduled"] * 2
    first = got[0][1]
    assert first["resilience.policy"] == "api"
    assert first["resilience.kind"] == "server"
    assert first["resilience.attempt"] == 1
    assert first["resilience.error.type"] == "Down"


def test_a_give_up_rejection_and_transitions_are_events(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """A breaker's opening, its rejection and a retry's give-up land on the span (issue #15)."""
    breaker = rs.CircuitBreaker(on=Down, name="upstream", failure_threshold=2)
    retry = rs.Retry(on=Down, attempts=2, name="api", clock=FakeClock())
    with tracer.start_as_current_span("request"):
        with pytest.raises(Down):
            rs.compose(retry, breaker)(flaky(5))()
        with pytest.raises(rs.CircuitOpenError):
            breaker(flaky(0))()
    got = events(the(exporter, "request"))
    names = [name for name, _ in got]
    assert names == [
        "resilience.retry_scheduled",
        "resilience.circuit_opened",
        "resilience.retries_exhausted",
        "resilience.call_rejected",
    ]
    assert got[2][1]["resilience.reason"] == "attempts"
    assert got[3][1]["resilience.policy"] == "upstream"
    assert got[3][1]["resilience.reason"] == "circuit_open"


def test_a_fallback_is_an_event_with_its_kind(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """Falling back is a span event naming the fallback and the failure's kind."""
    fallback = rs.Fallback(on=rs.Rule(exception=Down, kind="server"), to="cached", name="cache")
    with tracer.start_as_current_span("request"):
        assert fallback(flaky(1))() == "cached"
    [(name, attributes)] = events(the(exporter, "request"))
    assert name == "resilience.fallback_used"
    assert (attributes["resilience.policy"], attributes["resilience.kind"]) == ("cache", "server")


def test_a_timeout_is_an_event_in_every_backend(
    tracing: OpenTelemetryTracing,
    tracer: trace.Tracer,
    exporter: InMemorySpanExporter,
    backend: str,
) -> None:
    """An async timeout's expiry is a span event of kind "timeout" (issue #15)."""

    async def hang() -> None:
        await anyio.sleep(10)

    async def main() -> None:
        with tracer.start_as_current_span("request"), pytest.raises(rs.TimeoutExceededError):
            await rs.Timeout(0.01, name="slow").acall(hang)

    run_async(main, backend)
    [(name, attributes)] = events(the(exporter, "request"))
    assert name == "resilience.timeout_expired"
    assert attributes["resilience.kind"] == "timeout"
    assert attributes["resilience.timeout"] == 0.01


def test_no_message_reaches_the_span(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """Exceptions become their type: no message, so no secret, in any attribute."""
    retry = rs.Retry(on=Down, name="api", clock=FakeClock())
    with tracer.start_as_current_span("request"):
        retry(flaky(1))()
    text = repr(events(the(exporter, "request")))
    assert "sk-" not in text
    assert "Bearer" not in text


def test_nothing_is_added_without_a_recording_span(tracing: OpenTelemetryTracing) -> None:
    """No span, or one that does not record: the hook does nothing, and nothing fails."""
    retry = rs.Retry(on=Down, clock=FakeClock())
    assert retry(flaky(1))() == "ok"
    quiet = NonRecordingSpan(SpanContext(trace_id=1, span_id=1, is_remote=False))
    with trace.use_span(quiet):
        assert retry(flaky(1))() == "ok"
    assert not quiet.is_recording()


def test_spans_per_attempt_inside_a_retry(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """tracing.spans() inside Retry: one child span per attempt, failed ones ERROR (issue #15)."""
    retry = rs.Retry(on=Down, name="api", clock=FakeClock())
    fn = rs.compose(retry, tracing.spans())(flaky(2))
    with tracer.start_as_current_span("request"):
        assert fn() == "ok"
    attempts = [s for s in exporter.get_finished_spans() if s.name == "resilience.attempt"]
    request = the(exporter, "request")
    assert len(attempts) == 3
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in attempts
    )
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[0].attributes is not None
    assert attempts[0].attributes["resilience.error.type"] == "Down"
    assert attempts[0].events == ()  # no exception recorded: its message could hold a secret
    assert [name for name, _ in events(request)] == ["resilience.retry_scheduled"] * 2


def test_no_spans_unless_composed(
    tracing: OpenTelemetryTracing, tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """Spans per attempt are off by default: the hook alone opens none."""
    with tracer.start_as_current_span("request"):
        rs.Retry(on=Down, clock=FakeClock())(flaky(1))()
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]


def test_spans_around_coroutines_in_every_backend(
    tracing: OpenTelemetryTracing,
    tracer: trace.Tracer,
    exporter: InMemorySpanExporter,
    backend: str,
) -> None:
    """A coroutine's attempt span is current while it runs, under every backend."""
    seen: list[int] = []

    @rs.compose(rs.Retry(on=Down, clock=FakeClock()), tracing.spans("call"))
    async def fn() -> str:
        await checkpoint()
        seen.append(trace.get_current_span().get_span_context().span_id)
        if len(seen) == 1:
            raise Down
        return "ok"

    assert run_async(fn, backend) == "ok"
    calls = [s for s in exporter.get_finished_spans() if s.name == "call"]
    assert [s.context.span_id for s in calls] == seen


def test_a_stream_span_is_current_only_while_it_produces(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    """A generator's span covers the stream, current while items are made, not consumed."""
    inside: list[bool] = []
    outside: list[bool] = []

    @tracing.spans("stream")
    def numbers() -> Iterator[int]:
        for n in range(2):
            inside.append(trace.get_current_span().is_recording())
            yield n

    for _ in numbers():
        outside.append(trace.get_current_span().is_recording())
    assert (inside, outside) == ([True, True], [False, False])
    [span] = exporter.get_finished_spans()
    assert span.name == "stream"


def test_an_async_stream_span_ends_with_the_stream(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter, backend: str
) -> None:
    """An async generator's span ends when the stream does, ERROR if it failed."""

    @tracing.spans("astream")
    async def numbers() -> AsyncIterator[int]:
        yield 1
        raise Down

    async def main() -> list[int]:
        got: list[int] = []
        with pytest.raises(Down):
            async for n in numbers():
                got.append(n)
        return got

    assert run_async(main, backend) == [1]
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


DOC = Path(__file__).resolve().parent.parent / "docs" / "tracing.md"


def test_the_docs_examples_run_as_written() -> None:
    """Every python block of docs/tracing.md runs on its own, as a reader would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 2, "docs/tracing.md lost its examples"
    for number, block in enumerate(blocks, 1):
        namespace: dict[str, object] = {"__name__": f"tracing_doc_{number}"}
        run_block("tracing.md", block, namespace)
