"""CircuitBreaker under real threads and event loops: exact probe counts, conserved outcomes."""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock

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
def test_tasks_against_half_open_admit_exactly_the_probes(probes: int) -> None:
    """1,000 asyncio tasks on a half-open circuit: exactly half_open_max_calls run."""
    clock = FakeClock()
    breaker = half_open(clock, probes)

    async def main() -> tuple[int, collections.Counter[str]]:
        release = asyncio.Event()
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

        tasks = [asyncio.create_task(one()) for _ in range(TASKS)]
        for _ in range(100 * TASKS):  # bounded: a bug cannot hang the test
            if sum(task.done() for task in tasks) + admitted >= TASKS:
                break
            await asyncio.sleep(0)
        seen = admitted
        release.set()
        return seen, collections.Counter(await asyncio.gather(*tasks))

    admitted, results = asyncio.run(main())
    assert admitted == probes
    assert results == {"ok": probes, "rejected": TASKS - probes}
    assert breaker.state is rs.CircuitState.CLOSED


def test_tasks_on_several_loops_in_threads_admit_exactly_the_probes() -> None:
    """Tasks on 4 event loops in 4 threads share the probe places of one circuit."""
    clock = FakeClock()
    probes = 2
    loops = 4
    breaker = half_open(clock, probes)
    lock = threading.Condition()
    ready: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = []
    admitted = 0
    results: collections.Counter[str] = collections.Counter()

    async def loop_main() -> None:
        nonlocal admitted
        release = asyncio.Event()
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

        tasks = [asyncio.create_task(one()) for _ in range(TASKS // loops)]
        # Let every task run until it is rejected or holds a probe.
        while sum(t.done() for t in tasks) + local_admitted < len(tasks):  # noqa: ASYNC110
            await asyncio.sleep(0)
        with lock:
            ready.append((asyncio.get_running_loop(), release, local_admitted))
            lock.notify_all()
        out = await asyncio.gather(*tasks)
        with lock:
            results.update(out)

    threads = [
        threading.Thread(target=asyncio.run, args=(loop_main(),), daemon=True) for _ in range(loops)
    ]
    for thread in threads:
        thread.start()
    with lock:
        assert lock.wait_for(lambda: len(ready) == loops, timeout=WAIT), "a loop never got ready"
        seen = admitted
        for loop, release, held in ready:
            if held:  # a loop without probes may have finished already
                loop.call_soon_threadsafe(release.set)
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


def test_the_lock_is_not_held_across_an_await() -> None:
    """A task awaiting inside the breaker does not block other tasks of its loop."""
    clock = FakeClock()
    breaker = half_open(clock, probes=2)

    async def main() -> list[str]:
        gate = asyncio.Event()

        async def waits() -> str:
            await gate.wait()
            return "waited"

        async def opens_the_gate() -> str:
            gate.set()
            return "opened"

        first = asyncio.create_task(breaker.acall(waits))
        await asyncio.sleep(0)
        second = asyncio.create_task(breaker.acall(opens_the_gate))
        return list(await asyncio.gather(first, second))

    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(main())), daemon=True)
    thread.start()
    join_all([thread])  # a deadlock of the event loop on the breaker's lock fails here
    assert result == [["waited", "opened"]]
    assert breaker.state is rs.CircuitState.CLOSED
