"""MetricsCollector: a hook for failure-path events, a policy for calls, bounded and thread-safe."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import threading
import time
import tracemalloc
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilience as rs
from resilience.engine import Observer
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .forms import cancel_task, checkpoint, run_async
from .threads import WAIT, join_all

BOUND = rs.LatencySummary.RELATIVE_ERROR


class Response:
    """A duck-typed HTTP response: the classifier reads its status_code."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class StatusError(Exception):
    """An exception carrying an HTTP status, as requests' and httpx' errors do."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class CountingClock:
    """A clock that counts its readings (to prove who reads time)."""

    def __init__(self) -> None:
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return 0.0

    def sleep(self, seconds: float, /) -> None:
        pass

    async def asleep(self, seconds: float, /) -> None:
        pass


def nearest_rank(values: list[float], q: float) -> float:
    """The exact q-quantile by nearest rank: the ceil(q * n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def no_retry_waits() -> rs.backoff.Backoff:
    return rs.backoff.constant(0.0)


def raiser(error: BaseException) -> Callable[[], Any]:
    """A function raising *error* on every call."""

    def fail() -> Any:
        raise error

    return fail


# --- calls, outcomes and latency (the policy) -------------------------------------


def test_success_counts_one_call_and_its_duration(mode: Runner) -> None:
    """An observed success is one call, outcome "success", its duration read on the clock."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="billing", clock=clock)

    def work() -> int:
        clock.advance(0.25)
        return 7

    assert mode.run(rs.compose(metrics)(mode.make(work))) == 7
    m = metrics.snapshot()["billing"]
    assert (m.calls, dict(m.outcomes)) == (1, {"success": 1})
    assert (m.latency.count, m.latency.total, m.latency.min, m.latency.max) == (1, 0.25, 0.25, 0.25)


def test_failures_are_counted_by_the_classifiers_kind(mode: Runner) -> None:
    """A failure's outcome is its kind: network, server, rate_limit, or "error" when it has none."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    errors: list[Exception] = [
        ConnectionError("refused"),
        StatusError(503),
        StatusError(429),
        ValueError("no kind"),
    ]
    for error in errors:

        def work(error: Exception = error) -> None:
            clock.advance(1.0)
            raise error

        with pytest.raises(type(error)) as info:
            mode.run(rs.compose(metrics)(mode.make(work)))
        assert info.value is error
    m = metrics.snapshot()["api"]
    assert dict(m.outcomes) == {"network": 1, "server": 1, "rate_limit": 1, "error": 1}
    assert (m.calls, m.latency.count, m.latency.total) == (4, 4, 4.0)


def test_a_refused_result_counts_as_a_failure_of_its_kind() -> None:
    """A returned 503 response is a "server" failure; a 200 response a success."""
    metrics = rs.MetricsCollector(name="api", clock=FakeClock())
    pipeline = rs.compose(metrics)
    bad = Response(503)
    assert pipeline.call(lambda: bad) is bad
    pipeline.call(lambda: Response(200))
    assert dict(metrics.snapshot()["api"].outcomes) == {"server": 1, "success": 1}


def test_results_are_not_classified_by_a_classifier_without_result_rules() -> None:
    """With on=ConnectionError, a 503 response is just a result: a success."""
    metrics = rs.MetricsCollector(name="api", on=ConnectionError, clock=FakeClock())
    rs.compose(metrics).call(lambda: Response(503))
    assert dict(metrics.snapshot()["api"].outcomes) == {"success": 1}


def test_results_false_skips_result_classification() -> None:
    """results=False: a returned 503 response is a success, exceptions are still classified."""
    metrics = rs.MetricsCollector(name="api", results=False, clock=FakeClock())
    pipeline = rs.compose(metrics)
    pipeline.call(lambda: Response(503))
    with pytest.raises(StatusError):
        pipeline.call(raiser(StatusError(503)))
    assert dict(metrics.snapshot()["api"].outcomes) == {"server": 1, "success": 1}


def test_a_custom_classifier_names_the_kinds() -> None:
    """on= accepts an ErrorClassifier; its kinds become the outcome keys."""
    on = rs.ErrorClassifier([rs.Rule(exception=KeyError, kind="missing")])
    metrics = rs.MetricsCollector(on=on, clock=FakeClock())
    with pytest.raises(KeyError):
        rs.compose(metrics).call(raiser(KeyError("x")))
    assert dict(metrics.snapshot()["default"].outcomes) == {"missing": 1}


def test_retries_exhausted_on_a_result_counts_the_results_kind() -> None:
    """RetryExhaustedError is counted with the kind of the result that was refused."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    retry = rs.Retry(on=rs.transient, attempts=2, backoff=no_retry_waits(), clock=clock)
    with pytest.raises(rs.RetryExhaustedError):
        rs.compose(metrics, retry).call(lambda: Response(503))
    assert dict(metrics.snapshot()["api"].outcomes) == {"server": 1}


def test_our_timeout_counts_as_timeout_even_when_the_classifier_has_no_rule() -> None:
    """TimeoutExceededError is a "timeout" whatever the classifier says."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", on=KeyError, clock=clock)
    pipeline = rs.compose(metrics, rs.Timeout(10, clock=clock))
    with rs.Timeout(1, clock=clock), pytest.raises(rs.TimeoutExceededError):
        clock.advance(2)
        pipeline.call(lambda: None)
    assert dict(metrics.snapshot()["api"].outcomes) == {"timeout": 1}


def test_a_rejected_call_is_counted_but_not_timed() -> None:
    """CircuitOpenError is outcome "rejected" and stays out of the latency histogram."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    breaker = rs.CircuitBreaker(on=rs.transient, failure_threshold=1, reset_timeout=60, clock=clock)
    breaker.open()
    with pytest.raises(rs.CircuitOpenError):
        rs.compose(metrics, breaker).call(lambda: None)
    m = metrics.snapshot()["api"]
    assert (m.calls, dict(m.outcomes), m.latency.count) == (1, {"rejected": 1}, 0)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_cancellation_passes_through_and_counts_as_cancelled(
    exc_type: type[BaseException],
) -> None:
    """A BaseException that is not an Exception is re-raised as is, counted "cancelled"."""
    metrics = rs.MetricsCollector(name="api", clock=FakeClock())
    error = exc_type()

    def work() -> None:
        raise error

    with pytest.raises(exc_type) as info:
        rs.compose(metrics).call(work)
    assert info.value is error
    m = metrics.snapshot()["api"]
    assert (dict(m.outcomes), m.latency.count) == ({"cancelled": 1}, 0)


def test_a_cancelled_task_counts_as_cancelled(backend: str) -> None:
    """Cancelling a real task while the observed coroutine waits counts it "cancelled"."""
    metrics = rs.MetricsCollector(name="api")
    started: list[int] = []

    async def hang() -> None:
        started.append(1)
        await anyio.sleep_forever()

    cancel_task(lambda: rs.compose(metrics).acall(hang), lambda: bool(started), backend)
    assert dict(metrics.snapshot()["api"].outcomes) == {"cancelled": 1}


def test_outermost_sees_one_call_per_logical_call(mode: Runner) -> None:
    """compose(metrics, retry): one call however many attempts, its latency spanning them."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    retry = rs.Retry(on=ConnectionError, attempts=3, backoff=rs.backoff.constant(1.0), clock=clock)
    fails = iter([True, True, False])

    def work() -> str:
        if next(fails):
            raise ConnectionError
        return "ok"

    assert mode.run(rs.compose(metrics, retry)(mode.make(work))) == "ok"
    m = metrics.snapshot()["api"]
    assert (m.calls, dict(m.outcomes), m.latency.total) == (1, {"success": 1}, 2.0)


def test_innermost_sees_every_attempt(mode: Runner) -> None:
    """compose(retry, metrics): one observation per attempt."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="attempts", clock=clock)
    retry = rs.Retry(on=ConnectionError, attempts=3, backoff=no_retry_waits(), clock=clock)
    fails = iter([True, True, False])

    def work() -> str:
        if next(fails):
            raise ConnectionError
        return "ok"

    assert mode.run(rs.compose(retry, metrics)(mode.make(work))) == "ok"
    m = metrics.snapshot()["attempts"]
    assert (m.calls, dict(m.outcomes)) == (3, {"network": 2, "success": 1})


def test_named_copies_share_storage_under_their_own_labels() -> None:
    """named() returns a collector writing to the same storage under another label."""
    metrics = rs.MetricsCollector(clock=FakeClock())
    billing = metrics.named("billing")
    assert (billing.name, metrics.name) == ("billing", None)
    rs.compose(billing).call(lambda: None)
    rs.compose(metrics).call(lambda: None)
    snap = metrics.snapshot()
    assert sorted(snap.series) == ["billing", "default"]
    assert billing.snapshot() == snap


def test_a_raising_classifier_never_changes_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    """A classifier that raises is logged; the call's result or exception stays its own."""

    def broken(outcome: object) -> bool:
        raise RuntimeError("broken predicate")

    on = rs.ErrorClassifier([rs.Rule(when=broken)])
    metrics = rs.MetricsCollector(name="api", on=on, clock=FakeClock())
    pipeline = rs.compose(metrics)
    assert pipeline.call(lambda: 5) == 5
    error = ValueError("mine")

    def fail() -> None:
        raise error

    with (
        caplog.at_level(logging.ERROR, "resilience"),
        pytest.raises(ValueError, match="mine") as info,
    ):
        pipeline.call(fail)
    assert info.value is error
    assert dict(metrics.snapshot()["api"].outcomes) == {"error": 1, "success": 1}
    assert any("could not classify" in r.getMessage() for r in caplog.records)


def _formatted_errors(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_raising_classifier_logs_no_key_the_failure_quotes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The record names the failure redacted and chains only the classifier's own error."""
    key = "sk-proj-" + uuid.uuid4().hex

    def broken(outcome: object) -> bool:
        raise RuntimeError("broken predicate")

    metrics = rs.MetricsCollector(on=rs.Rule(exception=Exception, when=broken), clock=FakeClock())

    def fail() -> None:
        raise ConnectionError("auth failed for key " + key)

    with caplog.at_level(logging.ERROR, "resilience"), pytest.raises(ConnectionError):
        rs.compose(metrics).call(fail)
    text = _formatted_errors(caplog)
    assert key not in text
    assert "could not classify ConnectionError: auth failed for key sk-***; counted as 'error'" in (
        text
    )
    assert text.endswith("\nRuntimeError: broken predicate")  # its own traceback, unchained
    assert "During handling" not in text


def test_a_classifier_raising_on_a_result_logs_no_key_it_quotes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A classifier error quoting the result it choked on is logged redacted."""
    key = "sk-" + uuid.uuid4().hex

    def broken(outcome: object) -> bool:
        raise ValueError(f"cannot judge {outcome!r}")

    metrics = rs.MetricsCollector(on=rs.Rule(when=broken), clock=FakeClock())
    with caplog.at_level(logging.ERROR, "resilience"):
        assert rs.compose(metrics).call(lambda: {"api_key": key}) == {"api_key": key}
    text = _formatted_errors(caplog)
    assert "could not classify a result; counted a success" in text
    assert key not in text
    assert "ValueError: cannot judge {'api_key': '***'}" in text


def test_a_failing_recorder_logs_without_the_callers_exception(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When recording a failure fails, the record does not chain the caller's exception."""
    from resilience import _metrics

    key = "sk-" + uuid.uuid4().hex

    def broken_failure(self: object, kind: str, seconds: float) -> None:
        raise RuntimeError("store down")

    monkeypatch.setattr(_metrics._Series, "failure", broken_failure)
    metrics = rs.MetricsCollector(on=ConnectionError, clock=FakeClock())

    def fail() -> None:
        raise ConnectionError("refused for " + key)

    with caplog.at_level(logging.ERROR, "resilience"), pytest.raises(ConnectionError):
        rs.compose(metrics).call(fail)
    text = _formatted_errors(caplog)
    assert "metrics failed to record a failure; ignored" in text
    assert text.endswith("\nRuntimeError: store down")
    assert key not in text
    assert "ConnectionError" not in text


# --- streams --------------------------------------------------------------------


def test_a_generator_is_one_call_from_first_item_to_end() -> None:
    """A sync stream: items and return value pass through; one success timed to its end."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="stream", clock=clock)

    def stream() -> Iterator[int]:
        for i in range(3):
            clock.advance(0.5)
            yield i

    assert list(rs.compose(metrics)(stream)()) == [0, 1, 2]
    m = metrics.snapshot()["stream"]
    assert (dict(m.outcomes), m.latency.total) == ({"success": 1}, 1.5)


def test_a_generator_failure_and_an_early_close() -> None:
    """A stream that raises is a failure of its kind; one closed early is "cancelled"."""
    metrics = rs.MetricsCollector(name="stream", clock=FakeClock())

    def broken() -> Generator[int, None, None]:
        yield 1
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        list(rs.compose(metrics)(broken)())
    stream = rs.compose(metrics)(broken)()
    assert next(stream) == 1
    stream.close()
    assert dict(metrics.snapshot()["stream"].outcomes) == {"cancelled": 1, "network": 1}


def test_an_async_generator_is_observed_like_a_sync_one(backend: str) -> None:
    """Async streams: success, failure and early close, with asend forwarded."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="astream", clock=clock)

    async def echo() -> AsyncIterator[Any]:
        got = yield "ready"
        clock.advance(1.0)
        yield got

    async def broken() -> AsyncIterator[int]:
        yield 1
        raise StatusError(500)

    async def main() -> None:
        agen: Any = rs.compose(metrics)(echo)()
        assert await agen.__anext__() == "ready"
        assert await agen.asend("hello") == "hello"
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()
        with pytest.raises(StatusError):
            async for _ in rs.compose(metrics)(broken)():
                pass
        early: Any = rs.compose(metrics)(broken)()
        assert await early.__anext__() == 1
        await early.aclose()

    run_async(main, backend)
    m = metrics.snapshot()["astream"]
    assert dict(m.outcomes) == {"cancelled": 1, "server": 1, "success": 1}
    assert m.latency.max == 1.0


# --- events (the hook) ------------------------------------------------------------


def test_retries_and_give_ups_are_counted_by_the_retrys_name() -> None:
    """RetryScheduled and RetriesExhausted count under the name of the Retry that emitted them."""
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    retry = rs.Retry(
        on=ConnectionError, attempts=3, backoff=no_retry_waits(), name="r", clock=FakeClock()
    )

    def fail() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        retry.call(fail)
    m = metrics.snapshot()["r"]
    assert (m.retries, m.retries_exhausted, m.calls) == (2, 1, 0)


def test_per_policy_hooks_feed_the_collector_too() -> None:
    """hooks=[metrics] counts that policy's events only; unnamed policies count as "default"."""
    metrics = rs.MetricsCollector()
    rs.set_hooks([])
    listened = rs.Retry(on=ConnectionError, backoff=no_retry_waits(), hooks=[metrics])
    ignored = rs.Retry(on=ConnectionError, backoff=no_retry_waits(), name="ignored")
    for retry in (listened, ignored):
        with pytest.raises(ConnectionError):
            retry.call(raiser(ConnectionError()))
    snap = metrics.snapshot()
    assert list(snap.series) == ["default"]
    assert (snap["default"].retries, snap["default"].retries_exhausted) == (2, 1)


def test_rejections_timeouts_and_circuit_states_are_counted() -> None:
    """CallRejected, TimeoutExpired and the Circuit* events, under the emitting policy's name."""
    clock = FakeClock()
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    breaker = rs.CircuitBreaker(
        on=rs.transient, name="upstream", failure_threshold=1, reset_timeout=10, clock=clock
    )

    def fail() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert metrics.snapshot()["upstream"].circuit_state == "open"
    with pytest.raises(rs.CircuitOpenError):
        breaker.call(lambda: None)
    clock.advance(10)
    breaker.call(lambda: None)  # the probe succeeds: half-open, then closed
    breaker.isolate()
    with rs.Timeout(1, clock=clock), pytest.raises(rs.TimeoutExceededError):
        clock.advance(2)
        rs.Timeout(5, name="upstream", clock=clock).call(lambda: None)
    m = metrics.snapshot()["upstream"]
    assert (m.rejections, m.timeouts, m.circuit_state) == (1, 1, "isolated")
    assert dict(m.circuit_transitions) == {"open": 1, "half_open": 1, "closed": 1, "isolated": 1}


def test_subclassed_events_count_and_unknown_events_are_ignored() -> None:
    """A subclass of a known event counts as its base; other events are ignored."""

    class MyRetry(rs.RetryScheduled):
        __slots__ = ()

    metrics = rs.MetricsCollector()
    metrics(MyRetry(name="x", attempt=1, delay=0.0, elapsed=0.0))
    metrics(rs.Event(name="x"))
    assert metrics.snapshot()["x"].retries == 1


def test_the_collector_is_not_a_decorator() -> None:
    """Calling the collector on a function raises a TypeError pointing at compose()."""
    metrics = rs.MetricsCollector()
    with pytest.raises(TypeError, match=r"rs\.compose\(collector"):
        metrics(len)  # type: ignore[arg-type]


def test_a_hook_only_collector_never_reads_the_clock() -> None:
    """Events are counted without a clock reading; only a bound collector reads time."""
    clock = CountingClock()
    metrics = rs.MetricsCollector(clock=clock)
    rs.add_hook(metrics)
    with pytest.raises(ConnectionError):
        rs.Retry(on=ConnectionError, backoff=no_retry_waits()).call(raiser(ConnectionError()))
    assert (metrics.snapshot()["default"].retries, clock.reads) == (2, 0)


def test_a_global_hook_records_nothing_on_the_success_path() -> None:
    """Successful calls through policies that do not include the collector leave it empty."""
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    retry = rs.Retry(on=ConnectionError, name="r")
    for _ in range(100):
        retry.call(lambda: None)
    assert dict(metrics.snapshot().series) == {}


def test_fallbacks_used_are_counted_by_the_fallbacks_name(mode: Runner) -> None:
    """FallbackUsed counts under the name of the Fallback that answered; a success does not."""
    metrics = rs.MetricsCollector()
    fallback = rs.Fallback(on=ValueError, to=0, name="fb", hooks=[metrics])
    rs.set_hooks([])
    assert mode.run(fallback(mode.make(raiser(ValueError("boom"))))) == 0
    assert mode.run(fallback(mode.make(raiser(ValueError("again"))))) == 0
    assert mode.run(fallback(mode.make(lambda: 7))) == 7
    with pytest.raises(KeyError):
        mode.run(fallback(mode.make(raiser(KeyError("not handled")))))
    m = metrics.snapshot()["fb"]
    assert (m.fallbacks, m.hedges, m.retries, m.calls) == (2, 0, 0, 0)
    assert metrics.snapshot().as_dict()["series"]["fb"]["fallbacks"] == 2


def test_hedges_started_are_counted_by_the_hedges_name(backend: str) -> None:
    """HedgeStarted counts under the Hedge's name: delay=0 starts the one hedge at once."""
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    hedge = rs.Hedge(delay=0.0, max_hedges=1, on=ValueError, name="h")
    unnamed = rs.Hedge(delay=0.0, max_hedges=1, on=ValueError)

    async def work() -> int:
        await anyio.sleep(0.001)
        return 5

    async def main() -> list[int]:
        return [await hedge.acall(work), await hedge.acall(work), await unnamed.acall(work)]

    with capture_events() as events:
        assert run_async(main, backend) == [5, 5, 5]
    started = [e for e in events if isinstance(e, rs.HedgeStarted)]
    assert [e.name for e in started] == ["h", "h", None]
    snap = metrics.snapshot()
    assert (snap["h"].hedges, snap["h"].fallbacks, snap["default"].hedges) == (2, 0, 1)
    assert json.loads(json.dumps(snap.as_dict()))["series"]["h"]["hedges"] == 2


def test_a_retry_budget_giving_up_counts_as_exhausted() -> None:
    """Retry(budget=...) refusing a retry is one RetriesExhausted, reason "budget", counted."""
    metrics = rs.MetricsCollector()
    retry = rs.Retry(
        on=ConnectionError,
        attempts=5,
        backoff=no_retry_waits(),
        budget=rs.TokenBudget(max_tokens=1),
        name="budgeted",
        hooks=[metrics],
        clock=FakeClock(),
    )
    calls = 0

    def fail() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    with capture_events() as events, pytest.raises(ConnectionError):
        retry.call(fail)
    reasons = [e.reason for e in events if isinstance(e, rs.RetriesExhausted)]
    assert (reasons, calls) == (["budget"], 1)
    m = metrics.snapshot()["budgeted"]
    assert (m.retries, m.retries_exhausted) == (0, 1)


# --- snapshots and reset ----------------------------------------------------------


def test_a_snapshot_is_immutable_and_json_serialisable() -> None:
    """Frozen objects, read-only mappings, and as_dict() feeds json.dumps as is."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    pipeline = rs.compose(metrics)
    pipeline.call(clock.advance, 0.5)
    snap = metrics.snapshot()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snap["api"].calls = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap["api"].outcomes["success"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.series["other"] = snap["api"]  # type: ignore[index]
    data = json.loads(json.dumps(snap.as_dict()))
    assert data["series"]["api"]["calls"] == 1
    assert data["series"]["api"]["latency"]["p99"] == pytest.approx(0.5)
    pipeline.call(lambda: None)
    assert snap["api"].calls == 1  # a snapshot does not follow later calls


def test_an_unknown_name_raises_a_keyerror_listing_the_known_ones() -> None:
    """snapshot[name] for a name never seen says which names exist."""
    metrics = rs.MetricsCollector(name="api", clock=FakeClock())
    rs.compose(metrics).call(lambda: None)
    with pytest.raises(KeyError, match=r"no metrics for 'nope'; names: \['api'\]"):
        metrics.snapshot()["nope"]


def test_reset_zeroes_counts_keeps_names_and_circuit_states() -> None:
    """After reset, bound pipelines keep recording; the last circuit state is still known."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="api", clock=clock)
    pipeline = rs.compose(metrics)
    pipeline.call(lambda: None)
    metrics(rs.CircuitOpened(name="api", reason="failures", retry_after=1.0))
    metrics(rs.RetryScheduled(name="api", attempt=1, delay=0.0, elapsed=0.0))
    metrics.reset()
    m = metrics.snapshot()["api"]
    assert (m.calls, m.retries, m.latency.count, m.latency.p50) == (0, 0, 0, None)
    assert (m.circuit_state, dict(m.circuit_transitions)) == ("open", {})
    pipeline.call(lambda: None)
    assert metrics.snapshot()["api"].calls == 1


def test_an_empty_histogram_has_no_quantiles_and_q_is_checked() -> None:
    """No observation: quantiles are None; q outside [0, 1] is a ValueError."""
    summary = rs.LatencySummary(count=0, total=0.0, min=None, max=None, buckets=())
    assert (summary.p50, summary.mean) == (None, None)
    with pytest.raises(ValueError, match=r"q must be between 0 and 1, got 1\.5"):
        summary.quantile(1.5)


# --- construction -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_series": 0}, ValueError, "max_series must be >= 1, got 0"),
        ({"max_series": 1.5}, TypeError, "max_series must be an int >= 1, got float: 1.5"),
        ({"name": 3}, TypeError, "name must be a str or None, got int: 3"),
        ({"results": 1}, TypeError, "results must be a bool, got int: 1"),
        ({"clock": object()}, TypeError, "clock must have now()"),
        ({"on": None}, TypeError, "on must be"),
    ],
)
def test_bad_configuration_fails_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad argument is named, with its value."""
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        rs.MetricsCollector(**kwargs)


def test_named_checks_its_argument() -> None:
    """named(3) is a TypeError."""
    with pytest.raises(TypeError, match="name must be a str or None"):
        rs.MetricsCollector().named(3)  # type: ignore[arg-type]


# --- the histogram ----------------------------------------------------------------


def observe(durations: list[float]) -> tuple[rs.LatencySummary, list[float]]:
    """Run one observed call per duration on a fake clock; return the summary, exact durations."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="h", clock=clock)
    pipeline = rs.compose(metrics)
    exact = []
    for d in durations:
        before = clock.now()
        pipeline.call(clock.advance, d)
        exact.append(clock.now() - before)  # what the collector read, rounding included
    return metrics.snapshot()["h"].latency, exact


def within_bound(estimate: float | None, exact: float) -> bool:
    assert estimate is not None
    if exact < 1e-6:
        return abs(estimate - exact) <= 1e-6
    return abs(estimate - exact) <= BOUND * exact * (1 + 1e-9)


durations = st.one_of(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    st.floats(min_value=1e-4, max_value=2.0),
    st.sampled_from([0.0, 1e-6, 0.1, 1.0, 30.0]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(durations, min_size=1, max_size=300), st.floats(min_value=0.0, max_value=1.0))
def test_quantiles_are_within_the_documented_bound(values: list[float], q: float) -> None:
    """Any quantile is within 1 % of the exact nearest-rank value (1 µs absolute below 1 µs)."""
    summary, exact = observe(values)
    for quantile in (q, 0.5, 0.95, 0.99):
        assert within_bound(summary.quantile(quantile), nearest_rank(exact, quantile))
    assert (summary.p50, summary.p95, summary.p99) == tuple(
        summary.quantile(x) for x in (0.5, 0.95, 0.99)
    )
    assert (summary.count, summary.min, summary.max) == (len(exact), min(exact), max(exact))
    assert summary.total == pytest.approx(math.fsum(exact))


def test_quantiles_of_a_known_distribution() -> None:
    """1..1000 ms: p50, p95 and p99 within 1 % of 500, 950 and 990 ms."""
    summary, exact = observe([i / 1000 for i in range(1, 1001)])
    for q, value in ((0.5, 0.5), (0.95, 0.95), (0.99, 0.99)):
        assert nearest_rank(exact, q) == pytest.approx(value)
        assert summary.quantile(q) == pytest.approx(value, rel=BOUND)


def test_durations_beyond_the_range_report_the_exact_maximum() -> None:
    """Above 10^5 s, the estimate is clamped to the exact maximum."""
    summary, _ = observe([2e5, 3e5])
    assert summary.p99 == 3e5


# --- bounded memory ----------------------------------------------------------------


def test_memory_stays_constant_over_a_hundred_thousand_observations() -> None:
    """After a warm-up, 10^5 more observations (all buckets visited) leave nothing allocated."""
    clock = FakeClock()
    metrics = rs.MetricsCollector(name="mem", clock=clock)
    pipeline = rs.compose(metrics)
    spread = [10 ** (-7 + 13 * i / 997) for i in range(997)]  # 0.1 µs .. 10^6 s

    def run(n: int) -> None:
        for i in range(n):
            pipeline.call(clock.advance, spread[i % len(spread)])
            metrics(rs.RetryScheduled(name="mem", attempt=1, delay=0.0, elapsed=0.0, kind="k"))

    run(10_000)
    series = metrics._sink.series["mem"]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(100_000)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 16_384  # bytes; tracemalloc's own bookkeeping, not the collector's
    assert series.counts is not None
    assert (len(series.counts), len(metrics._sink.series)) == (1269, 1)
    assert metrics.snapshot()["mem"].calls == 110_000


def test_names_beyond_max_series_are_counted_under_other() -> None:
    """A flood of distinct names keeps at most max_series of them, plus "_other"."""
    metrics = rs.MetricsCollector(max_series=10)
    for i in range(1000):
        metrics(rs.CallRejected(name=f"breaker-{i}", reason="circuit_open"))
    snap = metrics.snapshot()
    assert len(snap.series) == 11
    assert snap["_other"].rejections == 990
    assert sum(m.rejections for m in snap.series.values()) == 1000


def test_outcome_kinds_beyond_the_cap_are_counted_as_other() -> None:
    """A classifier with 100 kinds cannot grow a name's outcomes past 32 keys."""
    on = rs.ErrorClassifier([rs.Rule(message=f"#{i}#", kind=f"kind-{i}") for i in range(100)])
    metrics = rs.MetricsCollector(name="api", on=on, clock=FakeClock())
    pipeline = rs.compose(metrics)
    for i in range(100):
        with pytest.raises(ValueError, match=f"#{i}#"):
            pipeline.call(raiser(ValueError(f"#{i}#")))
    outcomes = metrics.snapshot()["api"].outcomes
    assert (len(outcomes), outcomes["other"], sum(outcomes.values())) == (32, 69, 100)


# --- concurrency -------------------------------------------------------------------


def test_threads_conserve_every_count() -> None:
    """8 threads x 3000 calls with retries and failures: every count is exact."""
    threads, calls = 8, 3000
    metrics = rs.MetricsCollector(name="api")
    rs.set_hooks([metrics])
    retry = rs.Retry(on=ConnectionError, attempts=2, backoff=no_retry_waits(), name="retry")
    pipeline = rs.compose(metrics, retry)
    barrier = threading.Barrier(threads)
    snapshots: list[rs.MetricsSnapshot] = []

    def worker(seed: int) -> None:
        local = threading.local()
        barrier.wait()
        for i in range(calls):
            local.tries = 0

            def work(i: int = i) -> int:
                local.tries += 1
                if i % 3 == 0 and local.tries == 1:
                    raise ConnectionError  # retried once, then succeeds
                if i % 5 == 0:
                    raise ConnectionError  # fails every attempt
                return i

            try:
                pipeline.call(work)
            except ConnectionError:
                pass
            if seed == 0 and i % 500 == 0:
                snapshots.append(metrics.snapshot())

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    join_all(pool)
    failing = sum(1 for i in range(calls) if i % 5 == 0)
    retried = sum(1 for i in range(calls) if i % 3 == 0 or i % 5 == 0)
    snap = metrics.snapshot()
    api, r = snap["api"], snap["retry"]
    assert api.calls == api.latency.count == threads * calls
    assert dict(api.outcomes) == {
        "network": threads * failing,
        "success": threads * (calls - failing),
    }
    assert (r.retries, r.retries_exhausted) == (threads * retried, threads * failing)
    for partial in snapshots:  # every snapshot is consistent within a name
        if "api" in partial.series:
            assert partial["api"].calls == partial["api"].latency.count


def test_tasks_on_one_event_loop_conserve_every_count(backend: str) -> None:
    """2000 concurrent tasks on a real loop: calls and outcomes are exact."""
    metrics = rs.MetricsCollector(name="api")
    pipeline = rs.compose(metrics)

    async def work(i: int) -> int:
        await checkpoint()
        if i % 4 == 0:
            raise StatusError(502)
        return i

    async def main() -> None:
        failed: list[int] = []

        async def one(i: int) -> None:
            try:
                await pipeline.acall(work, i)
            except StatusError:
                failed.append(i)

        async with anyio.create_task_group() as group:
            for i in range(2000):
                group.start_soon(one, i)
        assert len(failed) == 500

    run_async(main, backend)
    assert dict(metrics.snapshot()["api"].outcomes) == {"server": 500, "success": 1500}


def test_events_from_capture_and_collector_agree() -> None:
    """The collector counts exactly the events a capture sees."""
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    retry = rs.Retry(on=ConnectionError, attempts=4, backoff=no_retry_waits(), name="r")
    with capture_events() as events, pytest.raises(ConnectionError):
        retry.call(raiser(ConnectionError()))
    scheduled = sum(isinstance(e, rs.RetryScheduled) for e in events)
    assert metrics.snapshot()["r"].retries == scheduled == 3


# --- watched bulkheads: gauges read at snapshot time ------------------------------


def until(condition: Callable[[], bool]) -> None:
    """Let other threads run until *condition* holds (a hang fails after WAIT seconds)."""
    give_up = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < give_up, "a hang?"
        time.sleep(0)  # a thread switch, not a wait


class Held:
    """Calls through a bulkhead from real threads, each held inside until `release`."""

    def __init__(self, bulkhead: rs.Bulkhead) -> None:
        self.bulkhead = bulkhead
        self.go = threading.Event()
        self.inside = threading.Semaphore(0)
        self.threads: list[threading.Thread] = []
        self.results: list[str] = []

    def _hold(self) -> str:
        self.inside.release()
        assert self.go.wait(WAIT)
        return "done"

    def _call(self) -> None:
        self.results.append(self.bulkhead.call(self._hold))

    def start(self, count: int) -> None:
        """Start *count* callers (they run, or queue, or are refused: see the test)."""
        for _ in range(count):
            thread = threading.Thread(target=self._call, daemon=True)
            thread.start()
            self.threads.append(thread)

    def wait_inside(self, count: int) -> None:
        """Block until *count* more calls are running inside the bulkhead."""
        for _ in range(count):
            assert self.inside.acquire(timeout=WAIT), "a hang?"

    def release(self) -> None:
        """Let every call end, and join the threads."""
        self.go.set()
        join_all(self.threads)
        assert self.results == ["done"] * len(self.threads)


def gauges(metrics: rs.MetricsCollector, name: str) -> tuple[int | None, ...]:
    m = metrics.snapshot()[name]
    return (m.in_flight, m.queued, m.limit)


class ScriptedLimit:
    """A hand-written adaptive limit (the `rs.limits.Limit` protocol): +1 a call, 1 on overload."""

    def __init__(self, initial: int) -> None:
        self._limit = initial
        self.updates: list[bool] = []

    @property
    def limit(self) -> int:
        return self._limit

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        self.updates.append(dropped)
        self._limit = 1 if dropped else self._limit + 1
        return self._limit


class CountedReads:
    """A bulkhead look-alike (the duck type `watch` reads) that counts its readings."""

    def __init__(self, name: str | None = "duck") -> None:
        self.name = name
        self.reads = 0

    @property
    def running(self) -> int:
        self.reads += 1
        return 1

    @property
    def waiting(self) -> int:
        self.reads += 1
        return 2

    @property
    def limit(self) -> int:
        self.reads += 1
        return 3


def test_a_watched_bulkhead_reports_in_flight_queued_and_limit() -> None:
    """Calls held by real threads show in the snapshot; once they end, 0 in flight, 0 queued."""
    metrics = rs.MetricsCollector()
    bulkhead = metrics.watch(
        rs.Bulkhead(max_concurrent=2, max_queue=1, name="llm", overload=ValueError, hooks=[metrics])
    )
    assert gauges(metrics, "llm") == (0, 0, 2)
    held = Held(bulkhead)
    held.start(2)
    held.wait_inside(2)
    assert gauges(metrics, "llm") == (2, 0, 2)
    held.start(1)
    until(lambda: bulkhead.waiting == 1)
    snap = metrics.snapshot()
    assert (snap["llm"].in_flight, snap["llm"].queued, snap["llm"].limit) == (2, 1, 2)
    with pytest.raises(rs.BulkheadFullError):
        bulkhead.call(int)  # every slot and the queue taken: refused, CallRejected counted
    held.release()
    m = metrics.snapshot()["llm"]
    assert (m.in_flight, m.queued, m.limit, m.rejections) == (0, 0, 2, 1)
    data = json.loads(json.dumps(snap.as_dict()))["series"]["llm"]
    assert (data["in_flight"], data["queued"], data["limit"]) == (2, 1, 2)
    assert (snap["llm"].in_flight, snap["llm"].queued) == (2, 1)  # a snapshot does not follow


def test_a_name_without_a_watched_bulkhead_has_no_gauges() -> None:
    """Names that only count calls or events report None, in the snapshot and as JSON null."""
    metrics = rs.MetricsCollector(name="api")
    rs.compose(metrics).call(int)
    m = metrics.snapshot()["api"]
    assert (m.in_flight, m.queued, m.limit, m.limit_changes) == (None, None, None, 0)
    data = m.as_dict()
    assert (data["in_flight"], data["queued"], data["limit"], data["limit_changes"]) == (
        None,
        None,
        None,
        0,
    )


def test_a_garbage_collected_bulkhead_is_no_longer_reported() -> None:
    """The collector holds bulkheads weakly: once one is collected, its gauges go back to None."""
    metrics = rs.MetricsCollector()
    kept = metrics.watch(rs.Bulkhead(max_concurrent=3, name="kept", overload=ValueError))
    gone = metrics.watch(rs.Bulkhead(max_concurrent=4, name="gone", overload=ValueError))
    assert gauges(metrics, "gone") == (0, 0, 4)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None  # nothing else (the collector included) kept it alive
    assert gauges(metrics, "gone") == (None, None, None)
    assert gauges(metrics, "kept") == (0, 0, 3)
    assert kept.limit == 3


def test_an_adaptive_limit_moving_shows_in_the_gauge_and_the_limit_changes() -> None:
    """A hand-written Limit moves: the snapshot reads the new limit and counts each LimitChanged."""
    metrics = rs.MetricsCollector()
    rs.add_hook(metrics)
    limit = ScriptedLimit(2)
    bulkhead = metrics.watch(
        rs.Bulkhead(max_concurrent=limit, name="adaptive", overload=ValueError, clock=FakeClock())
    )
    assert gauges(metrics, "adaptive") == (0, 0, 2)
    with capture_events() as events:
        assert bulkhead.call(lambda: 5) == 5  # a success: 2 -> 3
        assert gauges(metrics, "adaptive") == (0, 0, 3)
        with pytest.raises(ValueError, match="overloaded"):
            bulkhead.call(raiser(ValueError("overloaded")))  # an overload: 3 -> 1
    changes = [e for e in events if isinstance(e, rs.LimitChanged)]
    assert [(e.previous, e.limit, e.reason) for e in changes] == [
        (2, 3, "sample"),
        (3, 1, "overload"),
    ]
    assert limit.updates == [False, True]
    m = metrics.snapshot()["adaptive"]
    assert (m.limit, m.limit_changes) == (1, 2)
    metrics.reset()  # counts go back to zero; the gauge is read, not counted
    m = metrics.snapshot()["adaptive"]
    assert (m.limit, m.limit_changes) == (1, 0)


def test_gauges_are_read_at_snapshot_time_only() -> None:
    """Calls and events through a collector never read a watched object; a snapshot reads once."""
    metrics = rs.MetricsCollector(name="duck")
    rs.add_hook(metrics)
    duck = metrics.watch(CountedReads())
    duck.reads = 0  # watch() checked the three figures exist
    pipeline = rs.compose(
        metrics, rs.Retry(on=ConnectionError, attempts=2, backoff=no_retry_waits(), name="duck")
    )
    for _ in range(50):
        pipeline.call(int)
    with pytest.raises(ConnectionError):
        pipeline.call(raiser(ConnectionError()))
    metrics(rs.LimitChanged(name="duck", limit=3, previous=2))
    assert duck.reads == 0
    m = metrics.snapshot()["duck"]
    assert (m.in_flight, m.queued, m.limit, m.calls, m.retries, m.limit_changes) == (
        1,
        2,
        3,
        51,
        1,
        1,
    )
    assert duck.reads == 3


def test_bulkheads_sharing_a_label_are_summed_and_the_series_cap_holds() -> None:
    """Unnamed bulkheads report as "default", summed; watching twice counts once; past
    max_series, names report as "_other"; named copies share what they watch."""
    metrics = rs.MetricsCollector(max_series=2)
    first = rs.Bulkhead(max_concurrent=2, overload=ValueError)
    metrics.watch(first)
    metrics.watch(first)
    second = metrics.named("elsewhere").watch(rs.Bulkhead(max_concurrent=5, overload=ValueError))
    third = metrics.watch(rs.Bulkhead(max_concurrent=3, name="c", overload=ValueError))
    extra = [
        metrics.watch(rs.Bulkhead(max_concurrent=n, name=f"x{n}", overload=ValueError))
        for n in (4, 6)
    ]
    snap = metrics.snapshot()
    assert sorted(snap.series) == ["_other", "c", "default"]
    assert (snap["default"].limit, snap["c"].limit, snap["_other"].limit) == (7, 3, 10)
    with first:  # a `with` block takes a slot too
        assert gauges(metrics, "default") == (1, 0, 7)
    assert (second.limit, third.limit, len(extra)) == (5, 3, 2)


def test_watch_checks_its_argument() -> None:
    """Not a bulkhead, a bad name, or an object that takes no weak reference: a TypeError."""
    metrics = rs.MetricsCollector()
    with pytest.raises(TypeError, match="object has no running, waiting, limit"):
        metrics.watch(object())  # type: ignore[type-var]
    with pytest.raises(TypeError, match="name must be a str or None"):
        metrics.watch(CountedReads(name=b"x"))  # type: ignore[arg-type]

    class Slotted:
        __slots__ = ()
        name = None
        running = waiting = 0
        limit = 1

    with pytest.raises(TypeError, match="Slotted takes no weak references"):
        metrics.watch(Slotted())
    assert dict(metrics.snapshot().series) == {}


def test_a_sink_written_before_limit_changes_ignores_them() -> None:
    """A sink without limit_changed(), fallback() or hedge() receives those events unharmed."""

    class OldSink:
        def __init__(self) -> None:
            self.retries: list[str] = []

        def recorder(self, name: str, /) -> Any:
            raise AssertionError("not bound")

        def retry(self, name: str, kind: str, /) -> None:
            self.retries.append(name)

        exhausted = rejection = timeout = transition = recorder

    class OldObserver(Observer[Any]):
        __slots__ = ()

        def __init__(self) -> None:
            self._setup(OldSink(), None, rs.transient, FakeClock(), True)

    observer = OldObserver()
    observer(rs.LimitChanged(name="b", limit=2, previous=1))
    observer(rs.FallbackUsed(name="f", error=ValueError(), kind=None))
    observer(rs.HedgeStarted(name="h", hedge=1, delay=0.0))
    observer(rs.RetryScheduled(name="r", attempt=1, delay=0.0, elapsed=0.0))
    assert observer._sink.retries == ["r"]
