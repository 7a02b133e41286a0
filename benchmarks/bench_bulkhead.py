"""
Bulkhead against a semaphore, side by side in one run.

Two measurements:

1. Success-path cost per call with free slots (pyperf, through the shared
   harness's timers): `rs.Bulkhead(max_concurrent=10)` against what a user
   would write by hand, a `threading.Semaphore(10)` acquired and released
   around the call inside one closure; also a `threading.BoundedSemaphore(10)`
   closure and a `threading.Lock`-guarded counter closure (the least a limit
   that refuses must do: take a lock before and after the call). References:
   the bare call and a `functools.wraps` closure. Async: `rs.Bulkhead` on a
   coroutine against ``async with asyncio.Semaphore(10)`` around the await in
   one closure. Goal: within 1.3x of the semaphore closure, sync and async.
2. Throughput under contention, the protected call sleeping for real:
   8 threads calling a 1 ms function through one bulkhead of limit 4
   (``max_queue=8``: room for every thread) against a `threading.Semaphore(4)`;
   and 1,000 asyncio tasks each awaiting ``asyncio.sleep(0.001)`` through a
   bulkhead of limit 4 (``max_queue=1000``) against an `asyncio.Semaphore(4)`.
   Goal: the bulkhead's throughput within 10 % of the semaphore's. A bulkhead
   hands a freed slot to the first caller waiting (first come, first served);
   a semaphore lets whoever asks next take it.

No bulkhead library is among the benchmark extras (``pip install -e
'.[benchmarks]'``), so no peer is measured: the semaphore is the peer.

    python benchmarks/bench_bulkhead.py            # full run
    python benchmarks/bench_bulkhead.py --fast     # quicker, less precise
    python benchmarks/bench_bulkhead.py --quick    # no pyperf: timeit, a few seconds

The contention part sleeps for real (a benchmark, not a test) and runs in the
parent process only, after the per-call tables.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resilience as rs
from benchmarks._harness import Case, _quick, awork, closure, table, timer_of, work

SLOTS = 10  # the per-call part: every call finds a free slot
GOAL_PER_CALL = 1.3  # at most this many times the semaphore closure's time per call

LIMIT = 4  # the contention part: calls at once
THREADS = 8
CALLS_PER_THREAD = 250  # --quick: 50
TASKS = 1_000
SLEEP = 0.001  # seconds: the protected call's own duration
ROUNDS = 3  # best of; --quick: 1
GOAL_THROUGHPUT = 0.9  # at least this many times the semaphore's calls/s

QUICK = "--quick" in sys.argv

SEMAPHORE = "threading.Semaphore closure"
ASEMAPHORE = "asyncio.Semaphore closure"


def bulkhead(limit: int, max_queue: int = 0) -> rs.Bulkhead:
    return rs.Bulkhead(max_concurrent=limit, max_queue=max_queue, name="bench")


# --- what a user writes by hand --------------------------------------------------------


def with_semaphore(fn: Callable[..., Any], sem: threading.Semaphore) -> Callable[..., Any]:
    """A semaphore acquired and released around the call, in one closure."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sem.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            sem.release()

    return wrapper


def with_counter(fn: Callable[..., Any], limit: int) -> Callable[..., Any]:
    """A `threading.Lock`-guarded counter: refuse at *limit*, else count the call in and out."""
    lock = threading.Lock()
    running = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal running
        with lock:
            if running >= limit:
                raise RuntimeError(f"{limit} calls are running already")
            running += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    return wrapper


def with_asemaphore(
    fn: Callable[..., Awaitable[Any]], sem: asyncio.Semaphore
) -> Callable[..., Awaitable[Any]]:
    """``async with`` an `asyncio.Semaphore` around the await, in one closure."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        async with sem:
            return await fn(*args, **kwargs)

    return wrapper


# --- 1. success-path cost per call -----------------------------------------------------


def sync_cases() -> list[Case]:
    block = bulkhead(SLOTS)

    def with_block() -> int:
        with block:
            return work()

    return [
        Case("bare call", work),
        Case("functools.wraps closure", closure(work)),
        Case(SEMAPHORE, with_semaphore(work, threading.Semaphore(SLOTS))),
        Case(
            "threading.BoundedSemaphore closure",
            with_semaphore(work, threading.BoundedSemaphore(SLOTS)),
        ),
        Case("threading.Lock counter closure", with_counter(work, SLOTS)),
        Case("rs.Bulkhead", bulkhead(SLOTS)(work)),
        Case("rs.Bulkhead, with block", with_block),
    ]


def async_cases() -> list[Case]:
    # An asyncio.Semaphore binds to the loop that first makes it wait; with
    # free slots it never waits, so one serves every asyncio.run of the timer.
    return [
        Case("async bare call", awork, is_async=True),
        Case(ASEMAPHORE, with_asemaphore(awork, asyncio.Semaphore(SLOTS)), is_async=True),
        Case("async rs.Bulkhead", bulkhead(SLOTS)(awork), is_async=True),
    ]


def measure(cases: list[Case]) -> dict[str, float] | None:
    """Seconds per call of each case (pyperf, or timeit with --quick); `None` in a pyperf worker."""
    if QUICK:
        return _quick(cases)
    import pyperf

    runner = pyperf.Runner()
    results: dict[str, float] = {}
    for case in cases:
        bench = runner.bench_time_func(case.name, timer_of(case))
        if bench is not None and not runner.args.worker:
            results[case.name] = bench.mean()
    return None if runner.args.worker else results


def verdict(what: str, ratio: float, goal: float, *, at_most: bool) -> str:
    """One line: *what*'s ratio, the goal, and whether it is met."""
    met = ratio <= goal if at_most else ratio >= goal
    sign = "<=" if at_most else ">="
    return f"{what}: {ratio:.2f}x (goal {sign} {goal:g}x): {'met' if met else 'MISSED'}"


# --- 2. throughput under contention ----------------------------------------------------


def sleepy() -> None:
    time.sleep(SLEEP)


async def asleepy() -> None:
    await asyncio.sleep(SLEEP)


def thread_rate(fn: Callable[[], Any], calls: int) -> float:
    """Calls per second of THREADS threads each calling *fn* *calls* times."""
    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            for _ in range(calls):
                fn()
        except BaseException as exc:  # a refused call would make the rate a lie
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return THREADS * calls / elapsed


def task_rate(make: Callable[[], Callable[[], Awaitable[Any]]]) -> float:
    """Calls per second of TASKS tasks each awaiting one call of what *make* returns."""

    async def body() -> float:
        fn = make()  # inside the loop: an asyncio.Semaphore binds to it
        t0 = time.perf_counter()
        await asyncio.gather(*(fn() for _ in range(TASKS)))
        return TASKS / (time.perf_counter() - t0)

    return asyncio.run(body())


def rate_table(rates: dict[str, float], base: str) -> str:
    width = max(len(name) for name in rates)
    head = f"{'case':<{width}}  {'calls/s':>9}  {'x ' + base:>{len(base) + 2}}"
    lines = [head, "-" * len(head)]
    for name, rate in rates.items():
        lines.append(f"{name:<{width}}  {rate:>9.0f}  {rate / rates[base]:>{len(base) + 2}.2f}")
    return "\n".join(lines)


def contention() -> None:
    calls = 50 if QUICK else CALLS_PER_THREAD
    rounds = 1 if QUICK else ROUNDS
    threaded: dict[str, Callable[[], Any]] = {
        "no limit": sleepy,
        "threading.Semaphore(4)": with_semaphore(sleepy, threading.Semaphore(LIMIT)),
        "threading.BoundedSemaphore(4)": with_semaphore(sleepy, threading.BoundedSemaphore(LIMIT)),
        "rs.Bulkhead(4, max_queue=8)": bulkhead(LIMIT, max_queue=THREADS)(sleepy),
    }
    # Interleaved rounds, best of each: machine noise hits every case alike.
    rates: dict[str, float] = dict.fromkeys(threaded, 0.0)
    for _ in range(rounds):
        for name, fn in threaded.items():
            rates[name] = max(rates[name], thread_rate(fn, calls))
    print(
        f"\nBulkhead: throughput of {THREADS} threads calling a {SLEEP * 1e3:g} ms function, "
        f"{LIMIT} at once (best of {rounds})\n"
    )
    print(rate_table(rates, "threading.Semaphore(4)"))
    ratio = rates["rs.Bulkhead(4, max_queue=8)"] / rates["threading.Semaphore(4)"]
    print()
    print(verdict("rs.Bulkhead / threading.Semaphore", ratio, GOAL_THROUGHPUT, at_most=False))

    tasked: dict[str, Callable[[], Callable[[], Awaitable[Any]]]] = {
        "no limit": lambda: asleepy,
        "asyncio.Semaphore(4)": lambda: with_asemaphore(asleepy, asyncio.Semaphore(LIMIT)),
        "rs.Bulkhead(4, max_queue=1000)": lambda: bulkhead(LIMIT, max_queue=TASKS)(asleepy),
    }
    arates: dict[str, float] = dict.fromkeys(tasked, 0.0)
    for _ in range(rounds):
        for name, make in tasked.items():
            arates[name] = max(arates[name], task_rate(make))
    print(
        f"\nBulkhead: {TASKS} asyncio tasks each awaiting asyncio.sleep({SLEEP:g}), "
        f"{LIMIT} at once (best of {rounds}; total time = {TASKS} / calls/s)\n"
    )
    print(rate_table(arates, "asyncio.Semaphore(4)"))
    ratio = arates["rs.Bulkhead(4, max_queue=1000)"] / arates["asyncio.Semaphore(4)"]
    print()
    print(verdict("async rs.Bulkhead / asyncio.Semaphore", ratio, GOAL_THROUGHPUT, at_most=False))


def main() -> None:
    sync, async_ = sync_cases(), async_cases()
    results = measure(sync + async_)
    if results is None:  # a pyperf worker: the parent prints
        return
    mode = " (quick: timeit, min of 5)" if QUICK else ""
    print(f"\nBulkhead: success-path cost per call, {SLOTS} slots, all free{mode}\n")
    print(table({c.name: results[c.name] for c in sync}, (SEMAPHORE,)))
    print()
    print(table({c.name: results[c.name] for c in async_}, (ASEMAPHORE,)))
    print()
    sync_ratio = results["rs.Bulkhead"] / results[SEMAPHORE]
    async_ratio = results["async rs.Bulkhead"] / results[ASEMAPHORE]
    print(verdict(f"rs.Bulkhead / {SEMAPHORE}", sync_ratio, GOAL_PER_CALL, at_most=True))
    print(verdict(f"async rs.Bulkhead / {ASEMAPHORE}", async_ratio, GOAL_PER_CALL, at_most=True))
    contention()


if __name__ == "__main__":
    main()
