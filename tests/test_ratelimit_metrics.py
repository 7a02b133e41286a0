"""
The units a RateLimiter admitted (issue #12, item 6): exact under threads, read by the metrics.

`RateLimiter.admitted` is a counter the limiter keeps under the lock its
admission takes anyway: a call counts its cost when it takes its units (at
once, or reserving its turn), a waiter that gives up takes it back out, and a
settle moves its call's count to the real cost. `MetricsCollector.watch` and
`OpenTelemetryMetrics.watch` read it when a snapshot is taken or the SDK
collects.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable

import pytest

import resilience as rs
from resilience.engine import Wait
from resilience.testing import FakeClock

from .forms import cancel_task, checkpoint
from .threads import join_all

THREADS = 16
CALLS = 200


def race(threads: int, body: Callable[[int, int], float]) -> float:
    """*threads* threads each run ``body(thread, i)`` *CALLS* times; the sum of what they return."""
    totals = [0.0] * threads
    start = threading.Barrier(threads)

    def caller(index: int) -> None:
        start.wait()
        for i in range(CALLS):
            totals[index] += body(index, i)

    workers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    join_all(workers)
    return sum(totals)


def test_sixteen_threads_of_mixed_costs_count_exactly_the_units_admitted() -> None:
    """Decorated calls, blocks, try_acquire and settled permits: admitted == what ran, settled."""
    rs.set_hooks([])
    metrics = rs.MetricsCollector()
    limiter = metrics.watch(
        rs.RateLimiter(rate=1000, per=1.0, burst=6000, max_wait=0, name="llm", clock=FakeClock())
    )
    decorated = limiter(int)

    def body(thread: int, i: int) -> float:
        cost = 1 + (thread + i) % 5
        try:
            if i % 4 == 0:
                decorated()  # the closure's inlined admission, 1 unit
                return 1
            if i % 4 == 1:
                return cost if limiter.try_acquire(cost) else 0
            if i % 4 == 2:
                with limiter.acquire(cost) as permit:
                    actual = (cost * 3 + i) % 8  # above, below or at the estimate
                    permit.settle(actual)
                return actual
            with limiter:  # the gate's inlined admission, 1 unit
                return 1
        except rs.RateLimitedError:
            return 0

    expected = race(THREADS, body)
    assert 0 < expected < THREADS * CALLS * 4  # some calls were refused: the clock is frozen
    assert limiter.admitted == expected
    snap = metrics.snapshot()["llm"]
    assert snap.rate_admitted == expected
    assert json.loads(json.dumps(snap.as_dict()))["rate_admitted"] == expected


def test_sixteen_threads_settling_through_the_engine_count_the_settled_costs() -> None:
    """A callable cost and settle= on the decorated path: the count is the sum of real costs."""
    rs.set_hooks([])
    limiter = rs.RateLimiter(
        rate=1000, per=1.0, burst=50, max_wait=0, clock=FakeClock(), cost=lambda n: n % 7 + 1,
        settle=lambda result: result,
    )  # fmt: skip

    @limiter
    def call(n: int) -> int:
        return n % 5  # the real cost: often below the estimate, a refund

    def body(thread: int, i: int) -> float:
        n = thread * CALLS + i
        try:
            return call(n)
        except rs.RateLimitedError:
            return 0

    expected = race(THREADS, body)
    assert expected > 0
    assert limiter.admitted == expected


def test_a_refund_out_of_turn_counts_the_settled_cost_not_what_came_back() -> None:
    """A permit settled below its estimate behind another call: the count follows the call."""
    limiter = rs.RateLimiter(rate=10, per=1.0, burst=10, clock=FakeClock())
    with limiter.acquire(4) as first, limiter.acquire(3):
        available = limiter.available
        first.settle(1)  # not the last reservation: the bucket gives back at most a part
    assert limiter.available - available <= 3
    assert limiter.admitted == 1 + 3


def test_a_waiter_cancelled_takes_its_units_back_out_of_the_count(backend: str) -> None:
    """One call ran, one waited a minute and was cancelled: one call's units counted."""
    limiter = rs.RateLimiter(rate=1, per=60.0, burst=1)
    limiter.call(int)
    # Its turn reserved: counted; cancelled while it waits.
    cancel_task(lambda: limiter.acall(checkpoint), lambda: limiter.admitted == 2, backend)
    assert limiter.admitted == 1


def test_a_wait_past_its_deadline_takes_its_units_back_out_of_the_count() -> None:
    """Through the gate protocol: on_expired refuses the call and uncounts its reservation."""
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=1, per=1.0, burst=1, clock=FakeClock())
    limiter.admit(None)
    wait = limiter.admit(None)
    assert type(wait) is Wait
    assert limiter.admitted == 2
    with pytest.raises(rs.RateLimitedError):
        limiter.on_expired(wait, None)
    assert limiter.admitted == 1


def test_a_snapshot_reads_the_count_and_reset_leaves_it() -> None:
    """Limiters sharing a name are summed; names without one report None; reset keeps it."""
    metrics = rs.MetricsCollector(name="api")
    rs.compose(metrics).call(int)
    first = metrics.watch(rs.RateLimiter(rate=100, name="tpm", clock=FakeClock()))
    second = metrics.watch(rs.RateLimiter(rate=100, name="tpm", clock=FakeClock()))
    first.try_acquire(30)
    second.try_acquire(12)
    snap = metrics.snapshot()
    assert snap["tpm"].rate_admitted == 42
    assert snap["api"].rate_admitted is None
    assert snap.as_dict()["series"]["api"]["rate_admitted"] is None
    metrics.reset()
    assert metrics.snapshot()["tpm"].rate_admitted == 42  # the limiter's counter, not the sink's


def test_a_collected_limiter_is_no_longer_reported() -> None:
    """Watched weakly: once the limiter is garbage-collected, its name reports None."""
    metrics = rs.MetricsCollector()
    limiter = metrics.watch(rs.RateLimiter(rate=100, name="gone", clock=FakeClock()))
    limiter.try_acquire(5)
    assert metrics.snapshot()["gone"].rate_admitted == 5
    del limiter
    gc.collect()
    assert metrics.snapshot()["gone"].rate_admitted is None


def test_watch_refuses_an_object_without_figures_naming_what_it_needs() -> None:
    """Neither a bulkhead's three figures nor a limiter's admitted: a TypeError saying so."""
    with pytest.raises(TypeError, match=r"admitted \(a RateLimiter\)"):
        rs.MetricsCollector().watch(object())  # type: ignore[type-var]


def test_opentelemetry_reports_the_count_as_an_observable_counter() -> None:
    """resilience.rate_limit.admitted: the watched limiters' units, by policy, when collected."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from resilience.integrations.otel import OpenTelemetryMetrics

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        metrics = OpenTelemetryMetrics(meter_provider=provider)
        limiter = metrics.watch(rs.RateLimiter(rate=100, name="tpm", clock=FakeClock()))
        with limiter.acquire(20) as permit:
            permit.settle(7)
        limiter.try_acquire(5)
        data = reader.get_metrics_data()
        assert data is not None
        points = {
            tuple(sorted((point.attributes or {}).items())): point.value  # type: ignore[union-attr]
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "resilience.rate_limit.admitted"
            for point in metric.data.data_points
        }
        assert points == {(("resilience.policy", "tpm"),): 12}
    finally:
        provider.shutdown()
