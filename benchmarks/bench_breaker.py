"""
CircuitBreaker against the peers, side by side in one run.

Two measurements:

1. Closed-state success overhead per call (pyperf, through the shared
   harness): a bare call, a `functools.wraps` closure, one `wrapt`
   FunctionWrapper pass-through, `rs.CircuitBreaker`, pybreaker and
   circuitbreaker, all configured alike (5 failures, 60 s), the call always
   succeeding. Goals: at least 3x cheaper than pybreaker, no slower than
   circuitbreaker, within 1.5x of one wrapt layer.
2. Throughput of 8 threads calling a function that sleeps 1 ms through one
   shared breaker. pybreaker holds its lock across the call, which serializes
   the threads; the goal is at least 6x pybreaker's throughput.

    python benchmarks/bench_breaker.py            # full run
    python benchmarks/bench_breaker.py --fast     # quicker, less precise
    python benchmarks/bench_breaker.py --quick    # no pyperf: timeit, for a smoke run

The throughput part sleeps for real (a benchmark, not a test) and runs in the
parent process only, after the per-call table.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import resilience as rs
from benchmarks._harness import Case, awork, closure, main, passthrough, work

THREADS = 8
CALLS_PER_THREAD = 250
SLEEP = 0.001  # seconds: the protected call's own duration


def with_rs(fn: Callable[..., Any]) -> Callable[..., Any]:
    breaker = rs.CircuitBreaker(
        on=ConnectionError, name="bench", failure_threshold=5, reset_timeout=60.0
    )
    return breaker(fn)


def with_pybreaker(fn: Callable[..., Any]) -> Callable[..., Any]:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    return breaker(fn)


def with_circuitbreaker(fn: Callable[..., Any]) -> Callable[..., Any]:
    import circuitbreaker

    return circuitbreaker.circuit(  # type: ignore[no-any-return]
        failure_threshold=5, recovery_timeout=60, expected_exception=ConnectionError
    )(fn)


PEERS = {"pybreaker": with_pybreaker, "circuitbreaker": with_circuitbreaker}


def cases() -> list[Case]:
    out = [
        Case("bare call", work),
        Case("functools.wraps closure", closure(work)),
        Case("wrapt FunctionWrapper", passthrough(work)),
        Case("rs.CircuitBreaker", with_rs(work)),
    ]
    for peer, wrap in PEERS.items():
        try:
            out.append(Case(peer, wrap(work)))
        except ImportError:
            pass
    out.append(Case("async bare call", awork, is_async=True))
    out.append(Case("async rs.CircuitBreaker", with_rs(awork), is_async=True))
    try:
        out.append(Case("async circuitbreaker", with_circuitbreaker(awork), is_async=True))
    except ImportError:
        pass
    return out


# --- throughput under threads -----------------------------------------------------


def sleepy() -> None:
    time.sleep(SLEEP)


def throughput(fn: Callable[[], Any]) -> float:
    """Calls per second of THREADS threads each calling *fn* CALLS_PER_THREAD times."""
    start = threading.Barrier(THREADS + 1)

    def worker() -> None:
        start.wait()
        for _ in range(CALLS_PER_THREAD):
            fn()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return THREADS * CALLS_PER_THREAD / (time.perf_counter() - t0)


def throughput_table() -> str:
    contenders: dict[str, Callable[[], Any]] = {
        "bare call": sleepy,
        "rs.CircuitBreaker": with_rs(sleepy),
    }
    for peer, wrap in PEERS.items():
        try:
            contenders[peer] = wrap(sleepy)
        except ImportError:
            pass
    rates = {name: max(throughput(fn) for _ in range(3)) for name, fn in contenders.items()}
    base = rates.get("pybreaker")
    head = f"{'case':<20}  {'calls/s':>9}  {'x pybreaker':>12}"
    lines = [head, "-" * len(head)]
    for name, rate in rates.items():
        ratio = f"{rate / base:>12.2f}" if base else f"{'-':>12}"
        lines.append(f"{name:<20}  {rate:>9.0f}  {ratio}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(
        cases(),
        title="CircuitBreaker: closed-state success cost per call",
        references=("wrapt FunctionWrapper", "pybreaker", "circuitbreaker"),
    )
    if "--worker" not in sys.argv:
        print(
            f"\nCircuitBreaker: throughput of {THREADS} threads calling a {SLEEP * 1e3:g} ms "
            f"function through one breaker (best of 3)\n"
        )
        print(throughput_table())
