"""
Success-path cost of metrics: what a collector adds, and where it adds nothing.

- ``rs.Retry`` against ``rs.Retry`` with a `MetricsCollector` as a global hook
  (and as a per-policy hook): events are failure-path only, so the goal is no
  difference at all.
- ``compose(collector, retry)``: the explicit price of counting and timing
  every call (two clock reads, one lock, a histogram increment).
- ``compose(otel, retry)``: the same through the OpenTelemetry SDK (a real
  `MeterProvider` with an in-memory reader), when it is installed.

Every call succeeds. The global hook is process-wide state, so it is installed
only in the pyperf worker that measures that case (each case runs in its own
workers); ``--quick`` runs every case in one process, with the hook installed
for all of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resilience as rs
from benchmarks._harness import Case, awork, main, work

GLOBAL_HOOK_CASE = "rs.Retry, collector as global hook"


def make_retry(**kwargs: object) -> rs.Retry:
    return rs.Retry(
        on=ConnectionError,
        attempts=3,
        backoff=rs.backoff.exponential(initial=0.1, max=10.0),
        **kwargs,  # type: ignore[arg-type]
    )


def otel_metrics() -> rs.Policy | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from resilience.integrations.otel import OpenTelemetryMetrics
    except ImportError:
        return None
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OpenTelemetryMetrics(name="otel", meter_provider=provider)


def worker_task() -> int | None:
    """The index of the case this pyperf worker measures (`None` outside a worker)."""
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--worker-task="):
            return int(arg.partition("=")[2])
        if arg == "--worker-task" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
    return None


def cases() -> list[Case]:
    retry = make_retry()
    hooked = make_retry()  # an equal but distinct policy: its own bound runner
    collector = rs.MetricsCollector(name="bench")
    per_policy = make_retry(hooks=[collector])
    out = [
        Case("bare call", work),
        Case("rs.Retry", retry(work)),
        Case(GLOBAL_HOOK_CASE, hooked(work)),
        Case("rs.Retry, hooks=[collector]", per_policy(work)),
        Case("compose(collector)", rs.compose(collector)(work)),
        Case("compose(collector, retry)", rs.compose(collector, retry)(work)),
        Case(
            "compose(collector, retry), results=False",
            rs.compose(rs.MetricsCollector(name="bench", results=False), retry)(work),
        ),
    ]
    otel = otel_metrics()
    if otel is not None:
        out.append(Case("compose(otel, retry)", rs.compose(otel, retry)(work)))
    out += [
        Case("async bare call", awork, is_async=True),
        Case("async rs.Retry", retry(awork), is_async=True),
        Case("async compose(collector, retry)", rs.compose(collector, retry)(awork), is_async=True),
    ]
    names = [case.name for case in out]
    if "--quick" in sys.argv or worker_task() == names.index(GLOBAL_HOOK_CASE):
        rs.add_hook(collector)
    return out


if __name__ == "__main__":
    main(
        cases(),
        title="Metrics: success-path cost per call",
        references=("rs.Retry",),
    )
