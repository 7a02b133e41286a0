"""
The cost of `OpenTelemetryTracing`: nothing on a success, next to nothing without a recording span.

Events exist on failure paths only, so a success must cost the same with or
without the hook. A failure builds its event for the default log hook anyway;
with the tracing hook installed and no span recording, the hook reads the
current span and returns. Cases, side by side in one run:

- a Retry whose call succeeds, without and with the hook (a recording span current);
- a Retry whose call fails once and is retried at once (backoff 0), with the
  default hooks only; plus the tracing hook with no span; with a span that does
  not record (an unsampled trace); and with a recording span (the SDK's
  TracerProvider, no exporter: the cost of one span event).

    python benchmarks/bench_tracing.py            # full run
    python benchmarks/bench_tracing.py --fast     # quicker, less precise
    python benchmarks/bench_tracing.py --quick    # no pyperf: timeit, for a smoke run
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext

import resilience as rs
from benchmarks._harness import Case, main, work
from resilience.integrations.otel import OpenTelemetryTracing

_TRACING = OpenTelemetryTracing()
_TOKENS: list[object] = []


def _span(span: trace.Span | None) -> None:
    while _TOKENS:
        context.detach(_TOKENS.pop())  # type: ignore[arg-type]
    if span is not None:
        _TOKENS.append(context.attach(trace.set_span_in_context(span)))


def default_hooks() -> None:
    rs.set_hooks([rs.log_event])
    _span(None)


def tracing_no_span() -> None:
    rs.set_hooks([rs.log_event, _TRACING])
    _span(None)


def tracing_unsampled() -> None:
    rs.set_hooks([rs.log_event, _TRACING])
    _span(NonRecordingSpan(SpanContext(trace_id=1, span_id=1, is_remote=False)))


def tracing_recording() -> None:
    rs.set_hooks([rs.log_event, _TRACING])
    _span(TracerProvider().get_tracer("bench").start_span("request"))


def fails_every_other_call() -> Callable[[], Any]:
    state = [False]

    def fn() -> int:
        state[0] = not state[0]
        if state[0]:
            raise ConnectionError("reset")
        return 1

    return fn


def retry() -> rs.Retry:
    return rs.Retry(on=ConnectionError, attempts=3, backoff=rs.backoff.constant(0.0))


def cases() -> list[Case]:
    return [
        Case("success, default hooks", retry()(work), setup=default_hooks),
        Case("success, tracing, recording span", retry()(work), setup=tracing_recording),
        Case("retried once, default hooks", retry()(fails_every_other_call()), setup=default_hooks),
        Case(
            "retried once, tracing, no span",
            retry()(fails_every_other_call()),
            setup=tracing_no_span,
        ),
        Case(
            "retried once, tracing, unsampled span",
            retry()(fails_every_other_call()),
            setup=tracing_unsampled,
        ),
        Case(
            "retried once, tracing, recording span",
            retry()(fails_every_other_call()),
            setup=tracing_recording,
        ),
    ]


if __name__ == "__main__":
    main(
        cases(),
        title="Tracing: cost per call, without and with OpenTelemetryTracing",
        references=("success, default hooks", "retried once, default hooks"),
    )
