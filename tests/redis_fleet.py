"""
Worker processes for the fleet tests: each is a separate interpreter (spawned), with its own
breaker on a shared Redis circuit, as the processes of an application would be.

Module-level functions, so that ``multiprocessing``'s spawn context can import them.
"""

from __future__ import annotations

import collections
import threading
import time
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import resilience as rs
from resilience.integrations.redis import RedisStore

from .redis_server import STALL_TIMEOUT, make_client
from .threads import WAIT, join_all

THREADS = 2


class Boom(Exception):
    """A failure the breakers count."""


def _breaker(url: str, prefix: str, name: str, refresh: float, **options: Any) -> rs.CircuitBreaker:
    store = RedisStore(make_client(url), prefix=prefix, refresh=refresh)
    return rs.CircuitBreaker(on=Boom, name=name, store=store, **options)


def probe_worker(
    url: str,
    prefix: str,
    name: str,
    probes: int,
    calls: int,
    start: Barrier,
    release: Event,
    admitted: Synchronized[int],
    finished: Synchronized[int],
    results: Queue[dict[str, Any]],
) -> None:
    """
    THREADS threads call a half-open circuit until one is admitted or *calls* are rejected.

    An admitted call (a probe) counts itself in *admitted* and holds its place until
    *release*; a thread stops at its first admitted call. Reports its tallies and the
    events this process emitted.
    """
    events: list[str] = []
    lock = threading.Lock()
    breaker = _breaker(
        url,
        prefix,
        name,
        0.0,  # every call asks Redis: the contention is there, not in a cache
        failure_threshold=1,
        reset_timeout=0.0,
        half_open_max_calls=probes,
        success_threshold=probes,
        hooks=[lambda e: events.append(type(e).__name__)],
    )
    rs.set_hooks(())
    tallies: collections.Counter[str] = collections.Counter()

    def probe() -> str:
        with admitted.get_lock():
            admitted.value += 1
        release.wait(WAIT)
        return "ok"

    def worker() -> None:
        local: collections.Counter[str] = collections.Counter()
        start.wait(WAIT)
        for _ in range(calls):
            try:
                local[breaker.call(probe)] += 1
                break
            except rs.CircuitOpenError:
                local["rejected"] += 1
        with lock:
            tallies.update(local)
        with finished.get_lock():
            finished.value += 1

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    join_all(threads)
    results.put({"tallies": dict(tallies), "events": events})


def failure_worker(
    url: str,
    prefix: str,
    name: str,
    threshold: int,
    failures: int,
    start: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """THREADS threads each fail *failures* calls through the shared circuit; report tallies."""
    events: list[str] = []
    breaker = _breaker(
        url,
        prefix,
        name,
        0.25,
        failure_threshold=threshold,
        hooks=[lambda e: events.append(type(e).__name__)],
    )
    rs.set_hooks(())
    tallies: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def fail() -> None:
        raise Boom

    def worker() -> None:
        local: collections.Counter[str] = collections.Counter()
        start.wait(WAIT)
        for _ in range(failures):
            try:
                breaker.call(fail)
            except Boom:
                local["failed"] += 1
            except rs.CircuitOpenError:
                local["rejected"] += 1
        with lock:
            tallies.update(local)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    join_all(threads)
    results.put({"tallies": dict(tallies), "events": events})


def rollback_worker(
    url: str,
    name: str,
    failures: int,
    learned: Barrier,
    rolled: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """Read the circuit, wait while Redis goes back to an older period, fail *failures* calls."""
    events: list[str] = []
    breaker = _breaker(
        url, "resilience", name, 60.0, failure_threshold=1000, hooks=[_recorder(events)]
    )
    rs.set_hooks(())
    breaker.call(int)  # the cache now holds the current period, fresh for the whole test
    learned.wait(WAIT)
    rolled.wait(WAIT)
    for _ in range(failures):
        try:
            breaker.call(_boom)
        except Boom:
            pass
    results.put({"events": events})


def stall_worker(
    url: str,
    name: str,
    counted: Barrier,
    asleep: Event,
    awake: Event,
    results: Queue[dict[str, Any]],
    deadlines: bool = True,
) -> None:
    """
    Fail once (counted), once while Redis sleeps (the round trip times out), then until
    Redis answers again; report the events. Five failures open the shared circuit.

    Without *deadlines*, Redis runs the requests it finds when it wakes, as it would
    requests run in time whose replies were held back past the client's timeout.
    """
    events: list[str] = []
    store = RedisStore.from_url(url, timeout=STALL_TIMEOUT, reconnect=0.01, fallback="admit")
    breaker = rs.CircuitBreaker(
        on=Boom, name=name, store=store, failure_threshold=5, hooks=[_recorder(events)]
    )
    if not deadlines:
        breaker._store._late_after = 0  # type: ignore[attr-defined]
    rs.set_hooks(())

    def fail() -> None:
        try:
            breaker.call(_boom)
        except (Boom, rs.CircuitOpenError):
            pass

    fail()
    counted.wait(WAIT)
    asleep.wait(WAIT)
    fail()
    awake.wait(WAIT)
    give_up = time.monotonic() + WAIT
    while "StoreUnavailable" in events and "StoreRecovered" not in events:
        assert time.monotonic() < give_up, "Redis never answered again"
        fail()  # admitted without Redis until it is tried again, then counted there
    results.put({"events": events})


def _boom() -> None:
    raise Boom


def _recorder(events: list[str]) -> rs.Hook:
    return lambda event: events.append(type(event).__name__)
