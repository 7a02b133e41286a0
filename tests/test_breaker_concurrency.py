"""CircuitBreaker under real threads and event loops: exact probe counts, conserved outcomes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import trio

import resilience as rs
from resilience import _circuit
from resilience.testing import FakeClock

from .forms import Tasks, checkpoint, run_async
from .threads import WAIT, join_all

THREADS = 16
CALLS = 5_000
TASKS = 1_000
# A hang net for the 80,000 calls of 16 threads switching every microsecond: about 10 s on
# a quiet 2-core machine, over 60 s (the suite's WAIT) on a loaded one. Never a speed assertion.
HEAVY_WAIT = 10 * WAIT


class Boom(Exception):
    """A failure the breakers count."""


class Other(Exception):
    """An error the breakers' classifier ignores."""


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Make the interpreter switch threads far more often, to expose races; log nothing."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    rs.set_hooks(())  # conftest restores the global hooks
    yield
    sys.setswitchinterval(interval)


class PreemptingClock:
    """
    A fake clock whose reads hand the GIL to another thread.

    The store reads the clock inside its critical sections; under the GIL those
    sections are otherwise too short to be interrupted, so a missing lock would
    go unnoticed. ``time.sleep(0)`` releases the GIL without waiting: it is a
    thread switch point, not a sleep.
    """

    def __init__(self) -> None:
        self.fake = FakeClock()

    def now(self) -> float:
        time.sleep(0)
        return self.fake.now()

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)

    def sleep(self, seconds: float, /) -> None:
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float, /) -> None:
        await self.fake.asleep(seconds)


def half_open(clock: FakeClock | PreemptingClock, probes: int, **kwargs: Any) -> rs.CircuitBreaker:
    breaker = rs.CircuitBreaker(
        on=Boom,
        name="concurrent",
        failure_threshold=1,
        reset_timeout=10.0,
        half_open_max_calls=probes,
        success_threshold=probes,
        clock=clock,
        **kwargs,
    )
    breaker.open()
    clock.advance(10.0)
    assert breaker.state is rs.CircuitState.HALF_OPEN
    return breaker


class CountingStore:
    """Wraps the in-memory store and counts, under a lock, every decision and outcome."""

    def __init__(self, breaker: rs.CircuitBreaker) -> None:
        self.inner = rs.InMemoryCircuitStore(breaker)
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def acquire(self) -> rs.CircuitPermit | rs.CircuitRejection:
        permit = self.inner.acquire()
        self._count("rejected" if isinstance(permit, rs.CircuitRejection) else "admitted")
        return permit

    def on_success(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        self._count("success")
        return self.inner.on_success(permit, duration)

    def on_failure(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        self._count("failure")
        return self.inner.on_failure(permit, duration)

    def on_ignored(self, permit: rs.CircuitPermit, /) -> tuple[rs.CircuitTransition, ...]:
        self._count("ignored")
        return self.inner.on_ignored(permit)

    def force(self, state: rs.CircuitState, /) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.force(state)

    def reset(self) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.reset()

    def snapshot(self) -> tuple[rs.CircuitState, float | None]:
        return self.inner.snapshot()


@pytest.mark.parametrize("probes", [1, 3])
def test_threads_against_half_open_admit_exactly_the_probes(probes: int) -> None:
    """16 threads x 5,000 calls on a half-open circuit: exactly half_open_max_calls run."""
    clock = PreemptingClock()
    events: list[rs.Event] = []
    breaker = rs.CircuitBreaker(
        on=Boom,
        failure_threshold=1,
        reset_timeout=10.0,
        half_open_max_calls=probes,
        success_threshold=probes,
        clock=clock,
        hooks=[events.append],
    )
    breaker.open()
    clock.advance(10.0)  # the open period is over: the first caller makes it half-open
    lock = threading.Condition()
    prober_threads: set[int] = set()
    finished = 0
    release = threading.Event()
    tallies: collections.Counter[str] = collections.Counter()
    start = threading.Barrier(THREADS)

    def probe() -> None:
        with lock:
            prober_threads.add(threading.get_ident())
            lock.notify_all()
        release.wait(WAIT)
        raise Boom  # the probes fail: the circuit reopens, and stays open on the frozen clock

    def worker() -> None:
        nonlocal finished
        local: collections.Counter[str] = collections.Counter()
        start.wait()
        for _ in range(CALLS):
            try:
                breaker.call(probe)
            except rs.CircuitOpenError:
                local["rejected"] += 1
            except Boom:
                local["failed"] += 1
        with lock:
            tallies.update(local)
            finished += 1
            lock.notify_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    with lock:
        # Every thread has either run all its calls or is held inside a probe.
        assert lock.wait_for(
            lambda: finished + len(prober_threads) == THREADS, timeout=HEAVY_WAIT
        ), "a thread neither finished nor held a probe (a hang?)"
        admitted = len(prober_threads)
    release.set()
    join_all(threads, HEAVY_WAIT)
    assert admitted == probes
    assert tallies == {"failed": probes, "rejected": THREADS * CALLS - probes}
    assert breaker.state is rs.CircuitState.OPEN
    assert [type(e).__name__ for e in events if not isinstance(e, rs.CallRejected)] == [
        "CircuitOpened",  # by hand, before the threads
        "CircuitHalfOpened",  # once, by whichever thread came first
        "CircuitOpened",  # once, by the first failed probe
    ]


@pytest.mark.parametrize("probes", [1, 3])
def test_tasks_against_half_open_admit_exactly_the_probes(probes: int, backend: str) -> None:
    """1,000 tasks of one run on a half-open circuit: exactly half_open_max_calls run."""
    clock = FakeClock()
    breaker = half_open(clock, probes)

    async def main() -> tuple[int, collections.Counter[str]]:
        release = anyio.Event()
        admitted = 0

        @breaker
        async def probe() -> str:
            nonlocal admitted
            admitted += 1
            await release.wait()
            return "ok"

        async def one() -> str:
            try:
                return await probe()
            except rs.CircuitOpenError:
                return "rejected"

        async with Tasks() as group:
            tasks = [await group.start(one) for _ in range(TASKS)]
            for _ in range(100 * TASKS):  # bounded: a bug cannot hang the test
                if sum(task.done() for task in tasks) + admitted >= TASKS:
                    break
                await checkpoint()
            seen = admitted
            release.set()
        return seen, collections.Counter([await task.result() for task in tasks])

    admitted, results = run_async(main, backend)
    assert admitted == probes
    assert results == {"ok": probes, "rejected": TASKS - probes}
    assert breaker.state is rs.CircuitState.CLOSED


def test_tasks_on_several_loops_in_threads_admit_exactly_the_probes() -> None:
    """Tasks of 4 runs in 4 threads (2 asyncio, 2 trio) share the probe places of one circuit."""
    clock = FakeClock()
    probes = 2
    loops = 4
    breaker = half_open(clock, probes)
    lock = threading.Condition()
    ready: list[tuple[Callable[[], object], int]] = []  # (release from a thread, probes held)
    admitted = 0
    results: collections.Counter[str] = collections.Counter()

    def releaser(release: anyio.Event) -> Callable[[], object]:
        """How another thread sets *release*: through the running loop or trio run."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            token = trio.lowlevel.current_trio_token()
            return lambda: token.run_sync_soon(release.set)
        return lambda: loop.call_soon_threadsafe(release.set)

    async def loop_main() -> None:
        nonlocal admitted
        release = anyio.Event()
        local_admitted = 0

        @breaker
        async def probe() -> str:
            nonlocal admitted, local_admitted
            local_admitted += 1
            with lock:
                admitted += 1
            await release.wait()
            return "ok"

        async def one() -> str:
            try:
                return await probe()
            except rs.CircuitOpenError:
                return "rejected"

        async with Tasks() as group:
            tasks = [await group.start(one) for _ in range(TASKS // loops)]
            # Let every task run until it is rejected or holds a probe.
            while sum(t.done() for t in tasks) + local_admitted < len(tasks):
                await checkpoint()
            with lock:
                ready.append((releaser(release), local_admitted))
                lock.notify_all()
        out = [await task.result() for task in tasks]
        with lock:
            results.update(out)

    threads = [
        threading.Thread(target=run_async, args=(loop_main, backend), daemon=True)
        for backend in ("asyncio", "trio", "asyncio", "trio")
    ]
    for thread in threads:
        thread.start()
    with lock:
        assert lock.wait_for(lambda: len(ready) == loops, timeout=WAIT), "a loop never got ready"
        seen = admitted
        for release, held in ready:
            if held:  # a run without probes may have finished already
                release()
    join_all(threads)
    assert seen == probes
    assert results == {"ok": probes, "rejected": TASKS - probes}
    assert breaker.state is rs.CircuitState.CLOSED


def test_every_call_is_counted_exactly_once_under_contention() -> None:
    """16 threads x 5,000 mixed calls: each is one success, failure, ignored or rejection."""
    clock = FakeClock()
    stores: list[CountingStore] = []

    def factory(breaker: rs.CircuitBreaker) -> CountingStore:
        stores.append(CountingStore(breaker))
        return stores[-1]

    events: collections.Counter[str] = collections.Counter()
    events_lock = threading.Lock()

    def hook(event: rs.Event) -> None:
        with events_lock:
            events[type(event).__name__] += 1

    breaker = rs.CircuitBreaker(
        on=Boom,
        name="chaos",
        failure_threshold=3,
        trip=rs.FailureRate(0.5, calls=20),
        reset_timeout=1.0,
        half_open_max_calls=2,
        success_threshold=2,
        clock=clock,
        store=factory,
        hooks=[hook],
    )
    (store,) = stores
    seen: collections.Counter[str] = collections.Counter()
    seen_lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def body(kind: str) -> str:
        if kind == "boom":
            raise Boom
        if kind == "other":
            raise Other
        if kind == "interrupt":
            raise KeyboardInterrupt
        return kind

    fn = breaker(body)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local: collections.Counter[str] = collections.Counter()
        start.wait()
        for i in range(CALLS):
            kind = rng.choice(("ok", "ok", "ok", "boom", "boom", "other", "interrupt"))
            try:
                fn(kind)
                local["ok"] += 1
            except rs.CircuitOpenError:
                local["rejected"] += 1
            except Boom:
                local["boom"] += 1
            except Other:
                local["other"] += 1
            except KeyboardInterrupt:
                local["interrupt"] += 1
            if i % 97 == 0:
                clock.advance(0.25)
        with seen_lock:
            seen.update(local)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    join_all(threads)
    counts = store.counts
    assert sum(seen.values()) == THREADS * CALLS
    assert counts["admitted"] + counts["rejected"] == THREADS * CALLS
    assert counts["success"] + counts["failure"] + counts["ignored"] == counts["admitted"]
    assert (counts["success"], counts["failure"], counts["rejected"]) == (
        seen["ok"],
        seen["boom"],
        seen["rejected"],
    )
    assert counts["ignored"] == seen["other"] + seen["interrupt"]
    # The circuit really cycled, and no probe place leaked.
    assert events["CircuitOpened"] > 10
    assert events["CircuitHalfOpened"] <= events["CircuitOpened"]
    assert events["CircuitClosed"] <= events["CircuitHalfOpened"]
    inner = store.inner
    period = inner._period
    if inner._state is rs.CircuitState.HALF_OPEN and period is not None:
        assert not period.leases
        assert period.probes + period.successes == breaker.half_open_max_calls


def test_concurrent_failures_open_the_circuit_exactly_once() -> None:
    """16 calls in flight failing together against failure_threshold=8: one opening."""
    opened: list[rs.Event] = []
    breaker = rs.CircuitBreaker(
        on=Boom,
        failure_threshold=THREADS // 2,
        clock=PreemptingClock(),
        hooks=[lambda e: opened.append(e) if isinstance(e, rs.CircuitOpened) else None],
    )

    def worker(in_flight: threading.Barrier) -> None:
        def fail_together() -> None:
            in_flight.wait(WAIT)  # every call is admitted before any fails
            raise Boom

        with pytest.raises(Boom):
            breaker.call(fail_together)

    for round_ in range(1, 51):
        breaker.reset()
        in_flight = threading.Barrier(THREADS)

        threads = [
            threading.Thread(target=worker, args=(in_flight,), daemon=True) for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        join_all(threads)
        assert breaker.state is rs.CircuitState.OPEN
        assert len(opened) == round_


def test_the_lock_is_not_held_across_a_threads_call() -> None:
    """While one thread's call runs, other threads' calls and manual control proceed."""
    clock = FakeClock()
    breaker = half_open(clock, probes=2)
    inside = threading.Event()
    other_done = threading.Event()

    def slow_probe() -> str:
        inside.set()
        assert other_done.wait(WAIT), "the other thread was blocked by the breaker"
        return "slow"

    def other() -> None:
        inside.wait(WAIT)
        breaker.call(lambda: "fast")
        assert breaker.state is rs.CircuitState.HALF_OPEN
        other_done.set()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    assert breaker.call(slow_probe) == "slow"
    join_all([thread])
    assert breaker.state is rs.CircuitState.CLOSED


def test_the_lock_is_not_held_across_an_await(backend: str) -> None:
    """A task awaiting inside the breaker does not block other tasks of its loop."""
    clock = FakeClock()
    breaker = half_open(clock, probes=2)

    async def main() -> list[str]:
        gate = anyio.Event()

        async def waits() -> str:
            await gate.wait()
            return "waited"

        async def opens_the_gate() -> str:
            gate.set()
            return "opened"

        async with Tasks() as tasks:
            first = await tasks.start(breaker.acall, waits)
            await checkpoint()
            second = await tasks.start(breaker.acall, opens_the_gate)
        return [await first.result(), await second.result()]

    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(run_async(main, backend)), daemon=True)
    thread.start()
    join_all([thread])  # a deadlock of the event loop on the breaker's lock fails here
    assert result == [["waited", "opened"]]
    assert breaker.state is rs.CircuitState.CLOSED


class PreemptingCount:
    """
    A failure count whose steps hand the GIL to another thread, before and after counting.

    The in-memory store counts failures without its lock; a thread switch right
    around the count is otherwise too rare to expose a wrong order of its writes.
    """

    def __init__(self, start: int) -> None:
        self.count = itertools.count(start)

    def __iter__(self) -> PreemptingCount:
        return self

    def __next__(self) -> int:
        time.sleep(0)  # a switch point, not a sleep
        value = next(self.count)
        time.sleep(0)
        return value


@pytest.mark.parametrize("preempting", [False, True], ids=["count", "preempting-count"])
def test_failures_counted_without_the_lock_are_exact(
    preempting: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: 16 threads x 2,000 failures, the threshold 32,000: all admitted, one opening."""
    if preempting:
        monkeypatch.setattr(_circuit, "_new_count", PreemptingCount)
    calls = 2_000
    opened: list[rs.Event] = []
    breaker = rs.CircuitBreaker(
        on=Boom,
        failure_threshold=THREADS * calls,
        hooks=[lambda e: opened.append(e) if isinstance(e, rs.CircuitOpened) else None],
    )
    rejected = []
    start = threading.Barrier(THREADS)

    def boom() -> None:
        raise Boom

    fn = breaker(boom)

    def worker() -> None:
        start.wait(WAIT)
        for _ in range(calls):
            try:
                fn()
            except Boom:
                pass
            except rs.CircuitOpenError as error:  # a failure counted twice opens it early
                rejected.append(error)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert rejected == []
    assert len(opened) == 1  # a failure lost leaves it closed; one counted twice, two openings
    assert breaker.state is rs.CircuitState.OPEN


def test_a_success_racing_failures_leaves_no_failure_uncleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19: successes and failures landing together, then one success: nothing counted."""
    monkeypatch.setattr(_circuit, "_new_count", PreemptingCount)
    threshold = 3 * THREADS  # more than the 16 + 8 failures in a row a round can make

    breaker = rs.CircuitBreaker(on=Boom, failure_threshold=threshold)

    def body(fail: bool) -> None:
        if fail:
            raise Boom

    fn = breaker(body)

    def worker(fail: bool, together: threading.Barrier) -> None:
        with contextlib.suppress(Boom):
            fn(True)  # a count to reset
        together.wait(WAIT)
        with contextlib.suppress(Boom):
            fn(fail)

    for round_ in range(100):
        together = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=worker, args=(n % 2 == 0, together), daemon=True)
            for n in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        join_all(threads)
        fn(False)
        # Whatever the last race left counted, this success cleared it.
        for _ in range(threshold - 1):
            with contextlib.suppress(Boom):
                fn(True)
        assert breaker.state is rs.CircuitState.CLOSED, f"round {round_}"
        fn(False)
