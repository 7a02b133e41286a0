"""
Two adjacent gates share one frame (issue 19, item 6): exactly what nesting them does.

Every scenario runs twice, with fusion off (`resilience._gate._FUSE`, read at
bind time) and on, through real gates (CircuitBreaker, Bulkhead, RateLimiter,
a custom timed gate) whose decisions are logged by a recording proxy: the
sequence of gate calls (with their outcomes and durations) and what the
caller gets must be the same both ways.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience import _gate
from resilience._pipeline import Shape
from resilience.engine import GatePolicy, Wait, bind_gate
from resilience.testing import FakeClock

from .conftest import Runner
from .forms import BACKENDS, Boom, cancel_task, checkpoint, eventually, run_async, until
from .threads import WAIT, join_all

# --- a real gate, its decisions logged ------------------------------------------------


def _kind(permit: object) -> str:
    """A permit as the log shows it: its type (permits are the gates' own objects)."""
    return "Wait" if isinstance(permit, Wait) else type(permit).__name__


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}({exc})"


class Recorded:
    """A policy running *gate*'s decisions through the engine, logging every one of them."""

    def __init__(self, gate: Any, label: str, log: Log) -> None:
        self.gate, self.label, self.log = gate, label, log
        self.fast = gate.fast
        self.timed = gate.timed
        self.results = gate.results
        self.clock = gate.clock
        self.arguments = bool(getattr(gate, "arguments", False))

    def bind(self, inner: Any, shape: Shape, /) -> Any:
        return bind_gate(self, inner, shape)

    def _note(self, *entry: object) -> None:
        self.log.append((self.label, *entry))

    def admit(self, target: object, /, *call: Any) -> Any:
        try:
            permit = self.gate.admit(target, *call)
        except Exception as exc:
            self._note("admit", "raised", _error(exc))
            raise
        self._note("admit", _kind(permit))
        return permit

    def on_success(self, permit: Any, result: Any, duration: float | None, target: object) -> None:
        self._note("on_success", _kind(permit), result, duration)
        self.gate.on_success(permit, result, duration, target)

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object
    ) -> None:
        self._note("on_failure", _kind(permit), _error(error), duration)
        self.gate.on_failure(permit, error, duration, target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object
    ) -> None:
        self._note("on_cancel", _kind(permit), type(error).__name__, duration)
        self.gate.on_cancel(permit, error, duration, target)

    def on_expired(self, wait: Wait, target: object) -> Any:
        self._note("on_expired")
        return self.gate.on_expired(wait, target)


class Log(list[tuple[object, ...]]):
    """The gates' calls in order, then what the caller got; `runners`: how each was bound."""

    def __init__(self) -> None:
        super().__init__()
        self.runners: list[str] = []


class Tally(GatePolicy):
    """A custom gate: admits everything, times its calls; its ``on_success`` may raise."""

    def __init__(self, clock: FakeClock, *, refuse_success: bool = False) -> None:
        self._clock, self.refuse_success = clock, refuse_success

    @property
    def timed(self) -> bool:
        return True

    @property
    def clock(self) -> FakeClock:
        return self._clock

    def admit(self, target: object, /) -> str:
        return "ticket"

    def on_success(self, permit: Any, result: Any, duration: float | None, target: object) -> None:
        if self.refuse_success:
            raise Boom("on_success refused")


GATES: dict[str, Callable[[FakeClock], Any]] = {
    "breaker": lambda clock: rs.CircuitBreaker(on=Boom, failure_threshold=1, clock=clock),
    "bulkhead": lambda clock: rs.Bulkhead(max_concurrent=1),
    "limiter": lambda clock: rs.RateLimiter(rate=10, per=1, burst=1, clock=clock),
    "tally": Tally,
    "judge": lambda clock: rs.CircuitBreaker(  # sees every result (its `results`)
        on=rs.ErrorClassifier([rs.Rule(exception=Boom), rs.Rule(when=lambda r: r == "bad")]),
        failure_threshold=3,
        clock=clock,
    ),
    "adaptive": lambda clock: rs.Bulkhead(
        max_concurrent=rs.limits.AIMD(initial=2, maximum=4), clock=clock
    ),
}
PAIRS = [(a, b) for a in GATES for b in GATES if a != b]


def pipeline(log: Log, *gates: tuple[str, Any]) -> rs.Pipeline:
    """compose() of the recorded *gates* (label, gate), outermost first."""
    return rs.compose(*(Recorded(gate, label, log) for label, gate in gates))


def driver(chain: rs.Pipeline, shape: Shape) -> str:
    """The qualified name of the function *chain* runs for *shape* (its outermost runner)."""
    run: Any = chain.runner(shape)
    return str(run.__qualname__)


def bound(log: Log, chain: rs.Pipeline, shape: Shape) -> None:
    """Note how *chain* was bound for *shape*: its outermost runner's name."""
    log.runners.append(driver(chain, shape))


def both_ways(monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], Log]) -> Log:
    """Run *scenario* nested, then fused; check the logs are equal; return the fused one."""
    logs = []
    for fuse in (False, True):
        monkeypatch.setattr(_gate, "_FUSE", fuse)
        log = scenario()
        paired = [name for name in log.runners if "_pair" in name]
        assert bool(paired) is fuse, log.runners
        logs.append(log)
    assert logs[0] == logs[1]
    return logs[1]


def outcome(log: Log, call: Callable[[], object]) -> None:
    """Run *call*; log its result or its exception."""
    try:
        log.append(("caller", "returned", call()))
    except Exception as exc:
        log.append(("caller", "raised", _error(exc)))


def work(clock: FakeClock, error: Exception | None = None) -> Callable[[], str]:
    """The protected function: takes one second of *clock*, then returns or raises *error*."""

    def fn() -> str:
        clock.advance(1.0)
        if error is not None:
            raise error
        return "ok"

    return fn


def awork(clock: FakeClock, error: Exception | None = None) -> Callable[[], Any]:
    """As `work`, a coroutine function."""
    body = work(clock, error)

    async def fn() -> str:
        await checkpoint()
        return body()

    return fn


def run_pair(
    mode: Runner, outer: str, inner: str, *, error: Exception | None = None, calls: int = 1
) -> Callable[[], Log]:
    """A scenario: *calls* calls through compose(outer, inner) in *mode*."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        chain = pipeline(log, (outer, GATES[outer](clock)), (inner, GATES[inner](clock)))
        asynchronous = mode.backend is not None
        bound(log, chain, Shape.ASYNC if asynchronous else Shape.SYNC)
        for _ in range(calls):
            if asynchronous:
                outcome(log, lambda: mode.run(chain.acall, awork(clock, error)))
            else:
                outcome(log, lambda: chain.call(work(clock, error)))
        return log

    return scenario


# --- the outcomes of the call ---------------------------------------------------------


@pytest.mark.parametrize(("outer", "inner"), PAIRS)
def test_both_succeed(
    monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str, inner: str
) -> None:
    """Two successful calls through two adjacent gates: the same gate calls as nested."""
    log = both_ways(monkeypatch, run_pair(mode, outer, inner, calls=2))
    assert log[-1] == ("caller", "returned", "ok")


@pytest.mark.parametrize(("outer", "inner"), PAIRS)
@pytest.mark.parametrize("error", [Boom("counted"), ValueError("not counted")], ids=repr)
def test_call_fails(
    monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str, inner: str, error: Exception
) -> None:
    """A failing call (counted by the breaker or not), twice: the same gate calls as nested."""
    log = both_ways(monkeypatch, run_pair(mode, outer, inner, error=error, calls=2))
    assert (outer, "on_failure") in {entry[:2] for entry in log}
    assert log[-1][:2] == ("caller", "raised")


@pytest.mark.parametrize("outer", [g for g in GATES if g != "breaker"])
def test_inner_breaker_open(monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str) -> None:
    """An open inner breaker refuses: the outer gate learns the CircuitOpenError as a failure."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        breaker = rs.CircuitBreaker(on=Boom, failure_threshold=1, clock=clock)
        breaker.open()
        chain = pipeline(log, (outer, GATES[outer](clock)), ("breaker", breaker))
        if mode.backend is None:
            bound(log, chain, Shape.SYNC)
            outcome(log, lambda: chain.call(work(clock)))
        else:
            bound(log, chain, Shape.ASYNC)
            outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-2][:2] == (outer, "on_failure")
    assert "CircuitOpenError" in str(log[-2][3])
    assert "CircuitOpenError" in str(log[-1])


@pytest.mark.parametrize("outer", [g for g in GATES if g != "bulkhead"])
def test_inner_bulkhead_full(monkeypatch: pytest.MonkeyPatch, outer: str) -> None:
    """A full inner bulkhead refuses: the outer gate learns the BulkheadFullError as a failure."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        bulkhead = rs.Bulkhead(max_concurrent=1)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("bulkhead", bulkhead))
        bound(log, chain, Shape.SYNC)
        with bulkhead:  # the only slot, taken outside the pipeline
            outcome(log, lambda: chain.call(work(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-3][:3] == ("bulkhead", "admit", "raised")
    assert log[-2][1] == "on_failure"
    assert "BulkheadFullError" in str(log[-1])


@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive"])
def test_inner_limiter_refuses(monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str) -> None:
    """An inner rate limiter that may not wait refuses the second call: a failure outside."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        limiter = rs.RateLimiter(rate=1, per=60, burst=1, max_wait=0, clock=clock)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("limiter", limiter))
        for _ in range(2):
            if mode.backend is None:
                outcome(log, lambda: chain.call(work(clock)))
            else:
                outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        bound(log, chain, Shape.SYNC if mode.backend is None else Shape.ASYNC)
        return log

    log = both_ways(monkeypatch, scenario)
    assert "RateLimitedError" in str(log[-1])


@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive", "bulkhead"])
def test_inner_time_wait(monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str) -> None:
    """An inner rate limiter's time wait is inside the outer gate's duration, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        limiter = rs.RateLimiter(rate=1, per=10, burst=1, clock=clock)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("limiter", limiter))
        bound(log, chain, Shape.SYNC if mode.backend is None else Shape.ASYNC)
        for _ in range(2):
            if mode.backend is None:
                outcome(log, lambda: chain.call(work(clock)))
            else:
                outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        assert clock.sleeps, "the second call did not wait"
        return log

    log = both_ways(monkeypatch, scenario)
    assert ("limiter", "admit", "Wait") in log


@pytest.mark.parametrize("outer", ["breaker", "bulkhead", "limiter", "adaptive"])
def test_inner_on_success_raises(monkeypatch: pytest.MonkeyPatch, mode: Runner, outer: str) -> None:
    """The inner gate's on_success raising is the outer gate's failure, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        tally = Tally(clock, refuse_success=True)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("tally", tally))
        bound(log, chain, Shape.SYNC if mode.backend is None else Shape.ASYNC)
        if mode.backend is None:
            outcome(log, lambda: chain.call(work(clock)))
        else:
            outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-2][:2] == (outer, "on_failure")
    assert log[-1] == ("caller", "raised", "Boom(on_success refused)")


@pytest.mark.parametrize("inner", ["breaker", "bulkhead", "limiter", "tally"])
def test_outer_on_success_raises(monkeypatch: pytest.MonkeyPatch, mode: Runner, inner: str) -> None:
    """The outer gate's on_success raising after the inner one learnt a success, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        tally = Tally(clock, refuse_success=True)
        chain = pipeline(log, ("tally", tally), (inner, GATES[inner](clock)))
        bound(log, chain, Shape.SYNC if mode.backend is None else Shape.ASYNC)
        if mode.backend is None:
            outcome(log, lambda: chain.call(work(clock)))
        else:
            outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-1] == ("caller", "raised", "Boom(on_success refused)")


def test_closed_breakers_fast_paths(monkeypatch: pytest.MonkeyPatch, mode: Runner) -> None:
    """Two closed breakers admit by their fast paths and report nothing, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        chain = pipeline(
            log,
            ("outer", rs.CircuitBreaker(on=Boom, clock=clock)),
            ("inner", rs.CircuitBreaker(on=Boom, clock=clock)),
        )
        bound(log, chain, Shape.SYNC if mode.backend is None else Shape.ASYNC)
        if mode.backend is None:
            outcome(log, lambda: chain.call(work(clock)))
        else:
            outcome(log, lambda: mode.run(chain.acall, awork(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert list(log) == [("caller", "returned", "ok")]


@pytest.mark.parametrize("error", [None, Boom("counted")], ids=repr)
def test_pair_around_a_policy(
    monkeypatch: pytest.MonkeyPatch, mode: Runner, error: Exception | None
) -> None:
    """A pair around another policy (the profile's Retry, Bulkhead, breaker, Timeout), as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        gates = [Recorded(GATES[name](clock), name, log) for name in ("bulkhead", "breaker")]
        chain = rs.compose(
            rs.Retry(on=Boom, attempts=3, clock=clock, rng=random.Random(1)), *gates, rs.Timeout(10)
        )
        shape = Shape.SYNC if mode.backend is None else Shape.ASYNC
        log.runners.append(driver(rs.compose(*gates, rs.Timeout(10)), shape))
        if mode.backend is None:
            outcome(log, lambda: chain.call(work(clock, error)))
        else:
            outcome(log, lambda: mode.run(chain.acall, awork(clock, error)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert len(log) > 2


# --- waits and cancellations ------------------------------------------------------------


@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive", "limiter"])
def test_inner_queue_wait_threads(monkeypatch: pytest.MonkeyPatch, outer: str) -> None:
    """A call queued by the inner bulkhead, admitted when a thread frees the slot, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        bulkhead = rs.Bulkhead(max_concurrent=1, max_queue=1)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("bulkhead", bulkhead))
        bound(log, chain, Shape.SYNC)
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with bulkhead:
                holding.set()
                assert release.wait(WAIT)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(WAIT)
        caller = threading.Thread(target=outcome, args=(log, lambda: chain.call(work(clock))))
        caller.start()
        eventually(lambda: ("bulkhead", "admit", "Wait") in log)
        release.set()
        join_all([holder, caller])
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-1] == ("caller", "returned", "ok")


@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive"])
def test_inner_queue_wait_expires(monkeypatch: pytest.MonkeyPatch, outer: str) -> None:
    """The inner bulkhead's queue wait expires: the outer gate learns the refusal, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        bulkhead = rs.Bulkhead(max_concurrent=1, max_queue=1, max_wait=0.01)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("bulkhead", bulkhead))
        bound(log, chain, Shape.SYNC)
        with bulkhead:  # held until the queued call gave up
            outcome(log, lambda: chain.call(work(clock)))
        return log

    log = both_ways(monkeypatch, scenario)
    assert ("bulkhead", "on_expired") in log
    assert "BulkheadFullError" in str(log[-1])


@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive", "limiter"])
def test_inner_queue_wait_async(monkeypatch: pytest.MonkeyPatch, outer: str) -> None:
    """A task queued by the inner bulkhead, admitted when another task frees the slot, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        bulkhead = rs.Bulkhead(max_concurrent=1, max_queue=1)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("bulkhead", bulkhead))
        bound(log, chain, Shape.ASYNC)

        async def main() -> None:
            holding, release = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                async with bulkhead:
                    holding.set()
                    await release.wait()

            holder = asyncio.create_task(hold())
            await holding.wait()
            caller = asyncio.create_task(chain.acall(awork(clock)))
            await until(lambda: ("bulkhead", "admit", "Wait") in log)
            release.set()
            log.append(("caller", "returned", await caller))
            await holder

        run_async(main)
        return log

    log = both_ways(monkeypatch, scenario)
    assert log[-1] == ("caller", "returned", "ok")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("outer", ["breaker", "tally", "adaptive", "limiter"])
def test_cancelled_in_inner_wait(monkeypatch: pytest.MonkeyPatch, outer: str, backend: str) -> None:
    """A task cancelled in the inner bulkhead's queue: both gates get on_cancel, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        bulkhead = rs.Bulkhead(max_concurrent=1, max_queue=1)
        chain = pipeline(log, (outer, GATES[outer](clock)), ("bulkhead", bulkhead))
        bound(log, chain, Shape.ASYNC)
        with bulkhead:  # the slot stays taken: the call waits until cancelled
            cancel_task(
                lambda: chain.acall(awork(clock)),
                lambda: ("bulkhead", "admit", "Wait") in log,
                backend,
            )
        return log

    log = both_ways(monkeypatch, scenario)
    assert [entry[:3] for entry in log[-2:]] == [
        ("bulkhead", "on_cancel", "Wait"),
        (outer, "on_cancel", log[-1][2]),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("outer", "inner"), PAIRS)
def test_cancelled_in_call(
    monkeypatch: pytest.MonkeyPatch, outer: str, inner: str, backend: str
) -> None:
    """A task cancelled inside the call: both gates get on_cancel, inner first, as nested."""

    def scenario() -> Log:
        log, clock = Log(), FakeClock()
        chain = pipeline(log, (outer, GATES[outer](clock)), (inner, GATES[inner](clock)))
        bound(log, chain, Shape.ASYNC)
        started: list[bool] = []

        async def blocked() -> None:
            clock.advance(1.0)
            started.append(True)
            await anyio.sleep_forever()

        cancel_task(lambda: chain.acall(blocked), lambda: bool(started), backend)
        return log

    log = both_ways(monkeypatch, scenario)
    assert [entry[:2] for entry in log[-2:]] == [(inner, "on_cancel"), (outer, "on_cancel")]


# --- what is fused and what is not ------------------------------------------------------


def _runners(*gates: Any) -> Iterator[str]:
    chain = rs.compose(*gates)
    for shape in Shape:
        yield driver(chain, shape).split(".")[0]


def test_three_gates_fuse_the_inner_two() -> None:
    """A third gate nests around a fused pair: a fused runner is never fused again."""
    gates = (
        rs.Bulkhead(max_concurrent=2),
        rs.CircuitBreaker(on=Boom),
        rs.Bulkhead(max_concurrent=2),
    )
    chain = rs.compose(*gates)
    assert driver(chain, Shape.SYNC).startswith("_sync.")
    assert driver(chain, Shape.ASYNC).startswith("_async.")
    inner = rs.compose(*gates[1:])
    assert driver(inner, Shape.SYNC).startswith("_sync_pair.")
    assert driver(inner, Shape.ASYNC).startswith("_async_pair.")


def test_streams_and_lone_gates_are_not_fused() -> None:
    """Generators, async generators and a lone gate keep their own drivers."""
    pair = list(_runners(rs.Bulkhead(max_concurrent=2), rs.CircuitBreaker(on=Boom)))
    assert pair == ["_sync_pair", "_async_pair", "_gen", "_agen"]
    assert list(_runners(rs.Bulkhead(max_concurrent=2))) == ["_sync", "_async", "_gen", "_agen"]


def test_gates_apart_are_not_fused() -> None:
    """A policy between two gates (a Timeout) keeps them apart: each has its own frame."""
    chain = rs.compose(rs.Bulkhead(max_concurrent=2), rs.Timeout(5), rs.CircuitBreaker(on=Boom))
    assert driver(chain, Shape.SYNC).startswith("_sync.")
