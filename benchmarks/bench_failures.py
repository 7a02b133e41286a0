"""
The failure paths against the peers, side by side in one run (issue 19).

A resilience library is busiest when things fail. Three tables, every case
measured in the same run with the same loop:

1. **Rejection by an open breaker**, default hooks, no logging configured
   (the ``resilience`` logger has only its NullHandler, so nothing is built):
   `rs.CircuitBreaker` against circuitbreaker and pybreaker, and ours with
   the hooks off. Goals: at most 1.5 µs and no slower than circuitbreaker.
2. **A closed breaker where every call is a counted failure** (a threshold
   never reached). Goal: no slower than circuitbreaker.
3. **The failure path of Retry**: fail, fail, succeed, zero waits, default
   hooks: `rs.Retry` against a hand-written loop and tenacity (``wait_none``
   and a sleep that does nothing, so no case makes a system call), and
   Retry over a breaker sharing its classifier. Goal: at least 10x cheaper
   than tenacity.

    python benchmarks/bench_failures.py            # full run (a few minutes)
    python benchmarks/bench_failures.py --fast     # quicker, less precise
    python benchmarks/bench_failures.py --quick    # no pyperf: timeit, for a smoke run
    python benchmarks/bench_failures.py --rounds 30   # no pyperf: cases interleaved
    python benchmarks/bench_failures.py --rounds 30 --cpu   # the same, in CPU time

``--rounds N`` runs every case once per round, in turn, N rounds, and keeps
each case's best round: on a loaded machine (other work, frequency changes)
the cases share the same moments, and the best round is the least disturbed.
``--cpu`` times them in this thread's CPU time (`time.thread_time`), which
other processes on the machine disturb less than wall-clock time.

Every case catches what it raises with the same ``try``/``except``, so the
loop is the same for all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import resilience as rs
from benchmarks._harness import Case, main, table, timer_of

NEVER = 10**9  # a failure threshold no run reaches


class Refused(ConnectionError):
    """What the protected call raises."""


def refuse() -> int:
    raise Refused("connection refused")


def flaky() -> Callable[[], int]:
    """A call that fails twice, then succeeds; then again (three calls per round)."""
    state = [0]

    def call() -> int:
        state[0] += 1
        if state[0] % 3:
            raise Refused("connection refused")
        return 1

    return call


def guarded(fn: Callable[[], Any]) -> Callable[[], Any]:
    """*fn* inside the ``try``/``except`` that every case pays alike."""

    def case() -> Any:
        try:
            return fn()
        except Exception:
            return None

    return case


# --- 1. rejections ----------------------------------------------------------------


def rs_open() -> Callable[[], Any]:
    breaker = rs.CircuitBreaker(on=Refused, name="bench", reset_timeout=3600.0)
    fn = breaker(refuse)
    breaker.open()
    return fn


def circuitbreaker_open() -> Callable[[], Any]:
    import circuitbreaker

    fn = circuitbreaker.circuit(
        failure_threshold=1, recovery_timeout=3600, expected_exception=Refused
    )(refuse)
    guarded(fn)()  # the failure that opens it
    return fn  # type: ignore[no-any-return]


def pybreaker_open() -> Callable[[], Any]:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    fn = breaker(refuse)
    guarded(fn)()
    return fn


def hooks_off() -> None:
    rs.set_hooks(())


# --- 2. closed, every call a counted failure --------------------------------------


def rs_failing() -> Callable[[], Any]:
    return rs.CircuitBreaker(on=Refused, failure_threshold=NEVER)(refuse)


def circuitbreaker_failing() -> Callable[[], Any]:
    import circuitbreaker

    return circuitbreaker.circuit(  # type: ignore[no-any-return]
        failure_threshold=NEVER, recovery_timeout=60, expected_exception=Refused
    )(refuse)


def pybreaker_failing() -> Callable[[], Any]:
    import pybreaker

    return pybreaker.CircuitBreaker(fail_max=NEVER)(refuse)


# --- 3. Retry: fail, fail, succeed ----------------------------------------------------


def loop_retry() -> Callable[[], Any]:
    call = flaky()

    def retried() -> int:
        for attempt in range(3):
            try:
                return call()
            except Refused:
                if attempt == 2:
                    raise
        raise AssertionError

    return retried


def rs_retry() -> Callable[[], Any]:
    retry = rs.Retry(on=Refused, attempts=3, backoff=rs.backoff.constant(0.0))
    return retry(flaky())


def rs_retry_breaker() -> Callable[[], Any]:
    shared = rs.ErrorClassifier([rs.Rule(exception=Refused)])
    retry = rs.Retry(on=shared, attempts=3, backoff=rs.backoff.constant(0.0))
    breaker = rs.CircuitBreaker(on=shared, failure_threshold=NEVER)
    return rs.compose(retry, breaker)(flaky())


def tenacity_retry() -> Callable[[], Any]:
    import tenacity

    return tenacity.retry(
        retry=tenacity.retry_if_exception_type(Refused),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_none(),
        sleep=lambda seconds: None,
    )(flaky())


def cases() -> list[Case]:
    out: list[Case] = []

    def add(name: str, make: Callable[[], Callable[[], Any]], **options: Any) -> None:
        try:
            out.append(Case(name, guarded(make()), **options))
        except ImportError:
            pass

    add("reject: circuitbreaker", circuitbreaker_open)
    add("reject: rs.CircuitBreaker", rs_open)
    add("reject: pybreaker", pybreaker_open)
    add("count a failure: circuitbreaker", circuitbreaker_failing)
    add("count a failure: rs.CircuitBreaker", rs_failing)
    add("count a failure: pybreaker", pybreaker_failing)
    add("fail, fail, succeed: loop", loop_retry)
    add("fail, fail, succeed: rs.Retry", rs_retry)
    add("fail, fail, succeed: rs Retry+breaker", rs_retry_breaker)
    add("fail, fail, succeed: tenacity", tenacity_retry)
    # Last: in --quick mode every case runs in this one process.
    add("reject: rs.CircuitBreaker, hooks off", rs_open, setup=hooks_off)
    return out


def cpu_timer(case: Case) -> Callable[[int], float]:
    """``timer(loops)`` in this thread's CPU time (sync cases only)."""
    fn = case.fn

    def timer(loops: int) -> float:
        start = time.thread_time()
        for _ in range(loops):
            fn()
        return time.thread_time() - start

    return timer


def interleaved(
    all_cases: list[Case], rounds: int, loops: int = 20_000, *, cpu: bool = False
) -> dict[str, float]:
    """Best seconds per call of each case over *rounds* rounds, the cases taking turns."""
    make = cpu_timer if cpu else timer_of
    timers = {case.name: make(case) for case in all_cases if case.setup is None}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer(loops) / loops)
    # A case with a setup changes the process (the hooks): measured last, alone.
    for case in all_cases:
        if case.setup is not None:
            case.setup()
            timer = make(case)
            best[case.name] = min(timer(loops) / loops for _ in range(rounds))
    return best


REFERENCES = (
    "reject: rs.CircuitBreaker",
    "count a failure: rs.CircuitBreaker",
    "fail, fail, succeed: rs.Retry",
)

if __name__ == "__main__" and "--rounds" in sys.argv:
    count = int(sys.argv[sys.argv.index("--rounds") + 1])
    cpu = "--cpu" in sys.argv
    clock = "CPU time" if cpu else "wall-clock time"
    print(f"Failure paths: best of {count} interleaved rounds, cost per call ({clock})\n")
    print(table(interleaved(cases(), count, cpu=cpu), REFERENCES))
elif __name__ == "__main__":
    main(
        cases(),
        title="Failure paths: cost per call (fail, fail, succeed: per three attempts)",
        references=REFERENCES,
    )
