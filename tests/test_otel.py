"""OpenTelemetry metrics: the collector's model on a real MeterProvider, read in memory."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from .threads import join_all

pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)

import resilience as rs
from resilience.integrations.otel import (
    ATTRIBUTES,
    DURATION_BUCKETS,
    INSTRUMENTS,
    OpenTelemetryMetrics,
)
from resilience.testing import FakeClock

from .forms import checkpoint, run_async
from .test_metrics import Held, ScriptedLimit, until

SECRET = "sk-live-0123456789abcdef"


class Reader:
    """A MeterProvider with an in-memory reader, and helpers to read its points."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def metrics(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        out: dict[str, Metric] = {}
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "resilience"
                for metric in scope.metrics:
                    out[metric.name] = metric
        return out

    def calls(self) -> dict[frozenset[tuple[str, Any]], int]:
        """Calls by attribute set: the counts of resilience.call.duration."""
        return {key: point.count for key, point in self.points("resilience.call.duration").items()}

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Value (sums, gauges) or data point (histograms) by attribute set, for one instrument."""
        metric = self.metrics().get(name)
        if metric is None:
            return {}
        out: dict[frozenset[tuple[str, Any]], Any] = {}
        for point in metric.data.data_points:
            key = frozenset((point.attributes or {}).items())
            out[key] = point.value if isinstance(point, NumberDataPoint) else point
        return out


def attrs_(**kwargs: str) -> frozenset[tuple[str, str]]:
    """An attribute set written with short keys: attrs_(policy="x") -> resilience.policy=x."""
    return frozenset((f"resilience.{key}", value) for key, value in kwargs.items())


class StatusError(Exception):
    def __init__(self, status_code: int, message: str = "") -> None:
        super().__init__(message or f"HTTP {status_code}")
        self.status_code = status_code


def raiser(error: BaseException) -> Callable[[], Any]:
    def fail() -> Any:
        raise error

    return fail


@pytest.fixture
def otel() -> Iterator[Reader]:
    reader = Reader()
    yield reader
    reader.provider.shutdown()


def test_calls_and_durations_carry_policy_outcome_and_kind(otel: Reader) -> None:
    """Each call is one resilience.call.duration measurement, with its policy, outcome and kind."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(name="billing", clock=clock, meter_provider=otel.provider)
    pipeline = rs.compose(metrics)

    def slow() -> int:
        clock.advance(0.25)
        return 1

    for _ in range(3):
        pipeline.call(slow)
    with pytest.raises(StatusError):
        pipeline.call(raiser(StatusError(503)))
    ok = attrs_(policy="billing", outcome="success")
    server = attrs_(policy="billing", outcome="failure", kind="server")
    assert otel.calls() == {ok: 3, server: 1}
    point: HistogramDataPoint = otel.points("resilience.call.duration")[ok]
    assert (point.count, point.sum, point.min, point.max) == (3, 0.75, 0.25, 0.25)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS


def test_async_calls_are_observed_on_a_real_loop(otel: Reader, backend: str) -> None:
    """acall through a real event loop: 200 tasks, exact counts."""
    metrics = OpenTelemetryMetrics(name="async", meter_provider=otel.provider)
    pipeline = rs.compose(metrics)

    async def work(i: int) -> int:
        await checkpoint()
        if i % 10 == 0:
            raise ConnectionError
        return i

    async def main() -> None:
        async def one(i: int) -> None:
            with contextlib.suppress(ConnectionError):
                await pipeline.acall(work, i)

        async with anyio.create_task_group() as group:
            for i in range(200):
                group.start_soon(one, i)

    run_async(main, backend)
    assert otel.calls() == {
        attrs_(policy="async", outcome="success"): 180,
        attrs_(policy="async", outcome="failure", kind="network"): 20,
    }


def test_rejected_and_cancelled_calls_have_their_own_outcomes(otel: Reader) -> None:
    """Outcomes "rejected" and "cancelled" are measured too, apart from the others."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(name="api", clock=clock, meter_provider=otel.provider)
    breaker = rs.CircuitBreaker(on=rs.transient, failure_threshold=1, clock=clock)
    breaker.open()
    with pytest.raises(rs.CircuitOpenError):
        rs.compose(metrics, breaker).call(lambda: None)
    with pytest.raises(KeyboardInterrupt):
        rs.compose(metrics).call(raiser(KeyboardInterrupt()))
    assert otel.calls() == {
        attrs_(policy="api", outcome="rejected"): 1,
        attrs_(policy="api", outcome="cancelled"): 1,
    }


def test_events_feed_their_counters(otel: Reader) -> None:
    """Retries, give-ups, rejections, timeouts: labelled by the emitting policy, with reasons."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    rs.add_hook(metrics)
    retry = rs.Retry(on=rs.transient, attempts=3, backoff=rs.backoff.constant(0.0), name="r")
    with pytest.raises(ConnectionError):
        retry.call(raiser(ConnectionError()))
    breaker = rs.CircuitBreaker(on=rs.transient, name="b", clock=clock)
    breaker.open()
    with pytest.raises(rs.CircuitOpenError):
        breaker.call(lambda: None)
    with rs.Timeout(1, clock=clock), pytest.raises(rs.TimeoutExceededError):
        clock.advance(2)
        rs.Timeout(5, clock=clock).call(lambda: None)
    assert otel.points("resilience.retries") == {attrs_(policy="r", kind="network"): 2}
    assert otel.points("resilience.retries.exhausted") == {attrs_(policy="r", reason="attempts"): 1}
    assert otel.points("resilience.rejections") == {attrs_(policy="b", reason="circuit_open"): 1}
    assert otel.points("resilience.timeouts") == {attrs_(policy="default", reason="total"): 1}


def test_fallbacks_hedges_and_budget_give_ups_feed_their_counters(
    otel: Reader, backend: str
) -> None:
    """Real Fallback, Hedge and Retry(budget=): counted by policy, kind and reason."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    rs.add_hook(metrics)
    fallback = rs.Fallback(on=ValueError, to=0, name="fb")
    transient = rs.Fallback(on=rs.transient, to=0, name="fb")
    assert fallback.call(raiser(ValueError(SECRET))) == 0
    assert fallback.call(raiser(ValueError())) == 0
    assert transient.call(raiser(ConnectionError())) == 0
    assert fallback.call(lambda: 1) == 1
    hedge = rs.Hedge(delay=0.0, max_hedges=1, on=ValueError, name="h")

    async def work() -> int:
        await anyio.sleep(0.001)
        return 5

    async def main() -> list[int]:
        return [await hedge.acall(work) for _ in range(3)]

    assert run_async(main, backend) == [5, 5, 5]
    retry = rs.Retry(
        on=ConnectionError,
        attempts=5,
        backoff=rs.backoff.constant(0.0),
        budget=rs.TokenBudget(max_tokens=1),
        name="r",
    )
    with pytest.raises(ConnectionError):
        retry.call(raiser(ConnectionError()))
    assert otel.points("resilience.fallbacks") == {
        attrs_(policy="fb", kind="error"): 2,
        attrs_(policy="fb", kind="network"): 1,
    }
    assert otel.points("resilience.hedges") == {attrs_(policy="h"): 3}
    assert otel.points("resilience.retries.exhausted") == {attrs_(policy="r", reason="budget"): 1}
    assert otel.points("resilience.retries") == {}


def test_circuit_transitions_and_the_state_gauge(otel: Reader) -> None:
    """Each transition counts by the state entered; the gauge shows 1 for the current state."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    breaker = rs.CircuitBreaker(
        on=rs.transient, name="upstream", failure_threshold=1, reset_timeout=5, clock=clock
    )
    rs.add_hook(metrics)
    with pytest.raises(ConnectionError):
        breaker.call(raiser(ConnectionError()))
    gauge = otel.points("resilience.circuit.state")
    assert gauge == {
        attrs_(policy="upstream", state="closed"): 0,
        attrs_(policy="upstream", state="open"): 1,
        attrs_(policy="upstream", state="half_open"): 0,
        attrs_(policy="upstream", state="isolated"): 0,
    }
    clock.advance(5)
    breaker.call(lambda: None)
    assert otel.points("resilience.circuit.transitions") == {
        attrs_(policy="upstream", state="open", reason="failures"): 1,
        attrs_(policy="upstream", state="half_open"): 1,
        attrs_(policy="upstream", state="closed", reason="probes_succeeded"): 1,
    }
    assert otel.points("resilience.circuit.state")[attrs_(policy="upstream", state="closed")] == 1


def test_instruments_have_the_documented_names_and_units(otel: Reader) -> None:
    """The instrument names and units are the stable ones in the module docstring."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(name="n", clock=clock, meter_provider=otel.provider)
    rs.add_hook(metrics)
    pipeline = rs.compose(metrics, rs.Retry(on=rs.transient, backoff=rs.backoff.constant(0.0)))
    with pytest.raises(ConnectionError):
        pipeline.call(raiser(ConnectionError()))
    for event in (
        rs.CallRejected(reason="circuit_open"),
        rs.TimeoutExpired(timeout=1.0, idle=True),
        rs.CircuitOpened(reason="manual"),
        rs.LimitChanged(limit=2, previous=1),
        rs.FallbackUsed(kind="server"),
        rs.HedgeStarted(hedge=1, delay=0.5),
        rs.RateLimitWaited(delay=0.25, cost=1.0),
        rs.RateChanged(rate=8.0, previous=10.0, reason="rate_limit"),
    ):
        metrics(event)
    bulkhead = metrics.watch(rs.Bulkhead(max_concurrent=1, overload=ValueError))
    limiter = metrics.watch(rs.RateLimiter(rate=10))
    units = {name: metric.unit for name, metric in otel.metrics().items()}
    assert units == {
        "resilience.call.duration": "s",
        "resilience.retries": "{retry}",
        "resilience.retries.exhausted": "{call}",
        "resilience.rejections": "{call}",
        "resilience.timeouts": "{timeout}",
        "resilience.circuit.transitions": "{transition}",
        "resilience.circuit.state": "1",
        "resilience.bulkhead.limit_changes": "{change}",
        "resilience.fallbacks": "{fallback}",
        "resilience.hedges": "{hedge}",
        "resilience.rate_limit.waits": "s",
        "resilience.rate_limit.rate_changes": "{change}",
        "resilience.rate_limit.admitted": "{unit}",
        "resilience.bulkhead.in_flight": "{call}",
        "resilience.bulkhead.queued": "{call}",
        "resilience.bulkhead.limit": "{call}",
    }
    assert set(units) == set(INSTRUMENTS)
    assert bulkhead.limit == 1  # alive until the metrics were read
    assert limiter.admitted == 0
    assert otel.points("resilience.timeouts") == {attrs_(policy="default", reason="idle"): 1}


def test_no_secret_reaches_an_attribute(otel: Reader) -> None:
    """Exception messages, targets and arguments never become attributes."""
    clock = FakeClock()
    metrics = OpenTelemetryMetrics(name="api", clock=clock, meter_provider=otel.provider)
    rs.add_hook(metrics)
    retry = rs.Retry(on=rs.transient, attempts=2, backoff=rs.backoff.constant(0.0), name="r")
    error = StatusError(503, f"Authorization: Bearer {SECRET}")

    def leaky(api_key: str) -> None:
        raise error

    with pytest.raises(StatusError):
        rs.compose(metrics, retry).call(leaky, SECRET)
    seen: set[str] = set()
    for metric in otel.metrics().values():
        for point in metric.data.data_points:
            assert set(point.attributes or {}) <= set(ATTRIBUTES)
            seen.update(str(v) for v in (point.attributes or {}).values())
    assert seen == {"api", "r", "failure", "server", "attempts"}


def test_threads_conserve_the_counts(otel: Reader) -> None:
    """8 threads x 1000 calls: the counter sums are exact."""
    metrics = OpenTelemetryMetrics(name="t", meter_provider=otel.provider)
    pipeline = rs.compose(metrics)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(1000):
            try:
                pipeline.call(raiser(ConnectionError()) if i % 4 == 0 else int)
            except ConnectionError:
                pass

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for t in pool:
        t.start()
    join_all(pool)
    assert otel.calls() == {
        attrs_(policy="t", outcome="success"): 6000,
        attrs_(policy="t", outcome="failure", kind="network"): 2000,
    }


def test_named_copies_and_the_series_cap(otel: Reader) -> None:
    """named() shares the instruments; names past max_series report as "_other"."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider, max_series=2)
    for name in ("a", "b", "c", "d"):
        rs.compose(metrics.named(name)).call(int)
    assert otel.calls() == {
        attrs_(policy="a", outcome="success"): 1,
        attrs_(policy="b", outcome="success"): 1,
        attrs_(policy="_other", outcome="success"): 2,
    }


def test_failure_kinds_are_capped(otel: Reader) -> None:
    """A classifier with 100 kinds reports at most 32 distinct kind values."""
    on = rs.ErrorClassifier([rs.Rule(message=f"#{i}#", kind=f"kind-{i}") for i in range(100)])
    metrics = OpenTelemetryMetrics(name="k", on=on, meter_provider=otel.provider)
    pipeline = rs.compose(metrics)
    for i in range(100):
        with pytest.raises(ValueError, match=f"#{i}#"):
            pipeline.call(raiser(ValueError(f"#{i}#")))
    calls = otel.calls()
    assert len(calls) == 32
    assert calls[attrs_(policy="k", outcome="failure", kind="other")] == 69


def test_the_global_meter_provider_is_the_default() -> None:
    """Without meter_provider=, instruments come from the global provider (a no-op by default)."""
    metrics = OpenTelemetryMetrics(name="g")
    assert rs.compose(metrics).call(int) == 0
    assert repr(metrics) == "OpenTelemetryMetrics(name='g')"


def test_bad_configuration_fails_at_construction(otel: Reader) -> None:
    """max_series and name are checked when the object is built."""
    with pytest.raises(ValueError, match="max_series must be >= 1, got 0"):
        OpenTelemetryMetrics(meter_provider=otel.provider, max_series=0)
    with pytest.raises(TypeError, match="name must be a str or None"):
        OpenTelemetryMetrics(meter_provider=otel.provider, name=b"x")  # type: ignore[arg-type]


def test_importing_resilience_does_not_import_opentelemetry() -> None:
    """The integration is opt-in: resilience and resilience.integrations leave otel unloaded."""
    code = (
        "import sys, resilience, resilience.integrations\n"
        "print([m for m in sys.modules if m.startswith('opentelemetry')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- watched bulkheads -----------------------------------------------------------------


def bulkhead_gauges(otel: Reader, name: str) -> tuple[int | None, ...]:
    """in_flight, queued and limit of the bulkheads named *name* (None: not reported)."""
    key = attrs_(policy=name)
    return tuple(
        otel.points(f"resilience.bulkhead.{gauge}").get(key)
        for gauge in ("in_flight", "queued", "limit")
    )


def test_bulkhead_gauges_report_calls_in_flight_and_queued(otel: Reader) -> None:
    """Calls held by real threads show on the gauges when the SDK collects; then 0 and 0."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    bulkhead = metrics.watch(
        rs.Bulkhead(max_concurrent=3, max_queue=2, name="llm", overload=ValueError, hooks=[metrics])
    )
    assert bulkhead_gauges(otel, "llm") == (0, 0, 3)
    held = Held(bulkhead)
    held.start(3)
    held.wait_inside(3)
    held.start(2)
    until(lambda: bulkhead.waiting == 2)
    assert bulkhead_gauges(otel, "llm") == (3, 2, 3)
    with pytest.raises(rs.BulkheadFullError):
        bulkhead.call(int)
    held.release()
    assert bulkhead_gauges(otel, "llm") == (0, 0, 3)
    assert otel.points("resilience.rejections") == {attrs_(policy="llm", reason="bulkhead_full"): 1}


def test_a_garbage_collected_bulkhead_leaves_the_gauges(otel: Reader) -> None:
    """Bulkheads are held weakly: a collected one is no longer observed; unnamed is "default"."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    kept = metrics.watch(rs.Bulkhead(max_concurrent=2, overload=ValueError))
    gone = metrics.named("other").watch(
        rs.Bulkhead(max_concurrent=5, name="gone", overload=ValueError)
    )
    assert otel.points("resilience.bulkhead.limit") == {
        attrs_(policy="default"): 2,
        attrs_(policy="gone"): 5,
    }
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None
    for gauge in ("in_flight", "queued", "limit"):
        assert set(otel.points(f"resilience.bulkhead.{gauge}")) == {attrs_(policy="default")}
    assert kept.limit == 2


def test_an_adaptive_limit_moves_the_gauge_and_counts_its_changes(otel: Reader) -> None:
    """A hand-written Limit: the limit gauge follows it; each LimitChanged counts, by reason."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider)
    rs.add_hook(metrics)
    bulkhead = metrics.watch(
        rs.Bulkhead(
            max_concurrent=ScriptedLimit(4), name="adaptive", overload=ValueError, clock=FakeClock()
        )
    )
    assert bulkhead_gauges(otel, "adaptive") == (0, 0, 4)
    bulkhead.call(int)
    bulkhead.call(int)
    assert bulkhead_gauges(otel, "adaptive") == (0, 0, 6)
    with pytest.raises(ValueError, match="overloaded"):
        bulkhead.call(raiser(ValueError("overloaded")))
    assert bulkhead_gauges(otel, "adaptive") == (0, 0, 1)
    assert otel.points("resilience.bulkhead.limit_changes") == {
        attrs_(policy="adaptive", reason="sample"): 2,
        attrs_(policy="adaptive", reason="overload"): 1,
    }


def test_watched_names_past_max_series_report_as_other(otel: Reader) -> None:
    """The series cap holds for gauges too: further names are summed under "_other"."""
    metrics = OpenTelemetryMetrics(meter_provider=otel.provider, max_series=1)
    bulkheads = [
        metrics.watch(rs.Bulkhead(max_concurrent=n, name=f"b{n}", overload=ValueError))
        for n in (1, 2, 3)
    ]
    assert otel.points("resilience.bulkhead.limit") == {
        attrs_(policy="b1"): 1,
        attrs_(policy="_other"): 5,
    }
    assert len(bulkheads) == 3
