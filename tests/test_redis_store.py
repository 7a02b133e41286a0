"""The Redis circuit store, against a real redis-server: shared, atomic, cached, never fatal."""

from __future__ import annotations

import asyncio
import collections
import datetime
import multiprocessing
import pickle
import subprocess
import sys
import threading
import time
from typing import Any, Literal

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .redis_server import STALL, STALL_TIMEOUT, RedisServer, make_client, put_to_sleep
from .threads import WAIT, join_all

pytest.importorskip("redis", reason="the redis package is not installed")

import redis

from resilience.integrations.redis import (
    RedisCircuitStore,
    RedisStore,
    StoreRecovered,
    StoreUnavailable,
)

pytest_plugins = ["tests.redis_fixtures"]


class Boom(Exception):
    """A failure the breakers count."""


class Other(Exception):
    """An error the breakers ignore."""


def boom() -> None:
    raise Boom


def ok() -> str:
    return "ok"


def round_trips(client: redis.Redis) -> int:
    """Scripts and reads the server has run so far (INFO commandstats)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


def breaker(
    store: RedisStore, clock: rs.Clock | None = None, name: str = "api", **options: Any
) -> rs.CircuitBreaker:
    options.setdefault("failure_threshold", 3)
    return rs.CircuitBreaker(on=Boom, name=name, store=store, clock=clock or FakeClock(), **options)


def fail(b: rs.CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            b.call(boom)


def until(condition: Any, what: str) -> None:
    """Wait (really, briefly) for a Redis-side expiry to happen; bounded, never asserted on."""
    give_up = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.01)


def state(b: rs.CircuitBreaker) -> rs.CircuitState:
    """The breaker's state (a function: a type checker would narrow the property)."""
    return b.state


def events_named(events: list[rs.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- configuration ----------------------------------------------------------------------


def test_importing_resilience_does_not_import_redis() -> None:
    """`import resilience` never imports redis nor the integration."""
    code = (
        "import sys, resilience; "
        "assert 'redis' not in sys.modules, 'redis'; "
        "assert 'resilience.integrations.redis' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"fallback": "closed"}, ValueError, "fallback must be 'local', 'admit' or 'reject'"),
        ({"refresh": -1}, ValueError, "refresh must be a finite number of seconds >= 0, got -1"),
        ({"refresh": True}, TypeError, "refresh must be seconds"),
        ({"reconnect": 0}, ValueError, "reconnect must be"),
        ({"probe_lease": float("inf")}, ValueError, "probe_lease must be"),
        ({"expire": "1h"}, TypeError, "expire must be seconds"),
        ({"prefix": ""}, TypeError, "prefix must be a non-empty str"),
        ({"prefix": "a{b}"}, ValueError, "prefix must not contain braces"),
        ({"expire": 1e16}, ValueError, "expire must be at most 1000000000 seconds"),
        ({"probe_lease": 1e16}, ValueError, "probe_lease must be at most"),
    ],
)
def test_bad_configuration_fails_at_construction(
    client: redis.Redis, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad options raise at construction, naming the parameter and the value."""
    with pytest.raises(error, match=message):
        RedisStore(client, **options)


def test_zero_refresh_as_a_timedelta_is_zero(client: redis.Redis) -> None:
    """refresh=timedelta(0) means what refresh=0 means: read Redis on every call."""
    assert RedisStore(client, refresh=datetime.timedelta(0)).refresh == 0.0


def test_from_url_names_a_url_that_is_not_one() -> None:
    """from_url(None) says what is wrong instead of failing inside redis-py."""
    with pytest.raises(TypeError, match="url must be a Redis URL"):
        RedisStore.from_url(None)  # type: ignore[arg-type]


def test_names_and_periods_redis_cannot_hold_fail_at_construction(client: redis.Redis) -> None:
    """A name that cannot become a key, or an open period beyond Redis's expiries, is refused
    when the breaker is built, not on every protected call (which Redis must never fail)."""
    with pytest.raises(ValueError, match="encodable as UTF-8"):
        rs.CircuitBreaker(on=Boom, name="api-\udcff", store=RedisStore(client))
    with pytest.raises(ValueError, match="reset_timeout must be at most"):
        rs.CircuitBreaker(on=Boom, name="api", reset_timeout=1e16, store=RedisStore(client))


def test_the_client_must_be_a_redis_client() -> None:
    """A store needs a client it can register scripts with."""
    with pytest.raises(TypeError, match=r"client must be a redis\.Redis client"):
        RedisStore("redis://localhost")  # type: ignore[arg-type]


def test_an_async_client_is_refused(redis_server: RedisServer) -> None:
    """The store protocol is synchronous: a redis.asyncio client fails at construction."""
    import redis.asyncio

    with pytest.raises(TypeError, match=r"not a redis\.asyncio one"):
        RedisStore(redis.asyncio.Redis.from_url(redis_server.url))  # type: ignore[arg-type]


def test_an_unreadable_reply_is_a_redis_failure(client: redis.Redis) -> None:
    """A reply the store cannot decode falls back like an outage; the call is not failed."""
    b = breaker(RedisStore(client, refresh=0))
    store = b._store
    assert isinstance(store, RedisCircuitStore)
    object.__setattr__(store, "_acquire_script", lambda keys, args: [b"?"])
    with capture_events() as events:
        assert b.call(ok) == "ok"
    assert events_named(events) == ["StoreUnavailable"]


def test_a_shared_circuit_needs_a_name(client: redis.Redis) -> None:
    """The breaker's name is the circuit's identity across the fleet: required, no braces."""
    with pytest.raises(ValueError, match="needs a name"):
        rs.CircuitBreaker(on=Boom, store=RedisStore(client))
    with pytest.raises(ValueError, match="must not contain braces"):
        rs.CircuitBreaker(on=Boom, name="a}b", store=RedisStore(client))


def test_the_store_is_a_circuit_store(client: redis.Redis) -> None:
    """The breaker's store satisfies the CircuitStore protocol and says where it lives."""
    b = breaker(RedisStore(client, prefix="app"))
    store = b._store
    assert isinstance(store, RedisCircuitStore)
    assert isinstance(store, rs.CircuitStore)
    assert "'app:circuit:{api}'" in repr(store)


def test_from_url_makes_a_client_with_short_timeouts(redis_server: RedisServer) -> None:
    """from_url: the given timeout for sockets and connects, and no client-side retries."""
    store = RedisStore.from_url(redis_server.url, timeout=0.5, prefix="x", refresh=0)
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0
    assert (store.prefix, store.refresh) == ("x", 0.0)
    assert breaker(store).call(ok) == "ok"
    store.client.close()


# --- keys -------------------------------------------------------------------------------


def test_keys_are_namespaced_hash_tagged_and_expire(client: redis.Redis) -> None:
    """One hash per circuit under the prefix, a Cluster hash tag on the name, a TTL."""
    store = RedisStore(client, prefix="app", expire=120.0)
    b = breaker(store, half_open_max_calls=2, success_threshold=2, reset_timeout=0.0)
    fail(b)
    key = "app:circuit:{api}"
    assert client.hget(key, "f") == b"1"
    assert 0 < client.pttl(key) <= 120_000
    b.open()
    with b:  # a probe: its lease lives in the sorted set beside the hash
        assert client.zcard(f"{key}:leases") == 1
        assert client.pttl(f"{key}:leases") > 0
    assert sorted(client.keys("*")) == [key.encode()]  # the lease set went with the probe


def test_an_open_circuit_outlives_its_period(client: redis.Redis) -> None:
    """An open circuit's keys live for the open period plus expire."""
    b = breaker(RedisStore(client, expire=10.0), reset_timeout=1000.0)
    b.open()
    assert 1_000_000 < client.pttl("resilience:circuit:{api}") <= 1_010_000


def test_an_isolated_circuit_never_expires(client: redis.Redis) -> None:
    """A kill switch must not lapse: isolation persists until close() or reset()."""
    b = breaker(RedisStore(client))
    b.isolate()
    assert client.pttl("resilience:circuit:{api}") == -1
    b.close()
    assert client.pttl("resilience:circuit:{api}") > 0


# --- one circuit for the fleet ------------------------------------------------------------


def test_failures_are_counted_across_processes(client: redis.Redis) -> None:
    """Two breakers of one name (two processes) count toward one circuit."""
    store = RedisStore(client)
    clock_a = FakeClock()
    a, b = breaker(store, clock_a), breaker(store)
    fail(a, 2)
    fail(b)
    assert state(b) is rs.CircuitState.OPEN
    assert state(a) is rs.CircuitState.CLOSED  # what a read last, fresh for `refresh` seconds
    clock_a.advance(store.refresh)
    assert state(a) is rs.CircuitState.OPEN
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)


def test_a_success_resets_the_shared_count(client: redis.Redis) -> None:
    """A success that knows of pending failures resets them fleet-wide."""
    store = RedisStore(client)
    a, b = breaker(store), breaker(store)
    fail(a, 2)
    assert b.call(ok) == "ok"  # b's first read sees the two failures, its success resets them
    fail(a, 2)
    assert state(a) is rs.CircuitState.CLOSED
    assert client.hget("resilience:circuit:{api}", "f") == b"2"


def test_ignored_errors_neither_count_nor_reset(client: redis.Redis) -> None:
    """Errors the classifier does not trip on change nothing in Redis."""
    b = breaker(RedisStore(client))
    fail(b, 2)
    with pytest.raises(Other):
        b.call(lambda: (_ for _ in ()).throw(Other()))
    fail(b)
    assert state(b) is rs.CircuitState.OPEN


def test_one_opening_one_event_for_the_fleet(client: redis.Redis) -> None:
    """The transition is announced once, by the process that made it."""
    store = RedisStore(client)
    seen: dict[str, list[str]] = {"a": [], "b": []}
    a = breaker(store, hooks=[lambda e: seen["a"].append(type(e).__name__)])
    b = breaker(store, hooks=[lambda e: seen["b"].append(type(e).__name__)])
    rs.set_hooks(())
    fail(a, 2)
    fail(b)
    fail(a)  # a late failure of a closed period that has ended: changes nothing
    assert seen == {"a": [], "b": ["CircuitOpened"]}


def test_concurrent_failures_open_exactly_once(client: redis.Redis) -> None:
    """16 threads over 4 stores fail together against failure_threshold=16: one opening."""
    store = RedisStore(client)
    opened: list[rs.Event] = []
    breakers = [
        breaker(store, failure_threshold=16, hooks=[opened.append], reset_timeout=600.0)
        for _ in range(4)
    ]
    rs.set_hooks(())
    in_flight = threading.Barrier(16)

    def together() -> None:
        in_flight.wait(WAIT)
        raise Boom

    def worker(n: int) -> None:
        with pytest.raises(Boom):
            breakers[n % 4].call(together)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert events_named(opened) == ["CircuitOpened"]
    assert client.hget("resilience:circuit:{api}", "s") == b"o"


# --- the local cache ------------------------------------------------------------------


def test_the_closed_success_path_makes_no_round_trip(client: redis.Redis) -> None:
    """While the cache is fresh, a closed circuit admits and records successes locally."""
    clock = FakeClock()
    b = breaker(RedisStore(client, refresh=0.25), clock)
    assert b.call(ok) == "ok"  # the first call reads Redis
    before = round_trips(client)
    for _ in range(1000):
        b.call(ok)
    assert round_trips(client) == before
    clock.advance(0.25)  # the cache is stale: one read, then fresh again
    for _ in range(1000):
        b.call(ok)
    assert round_trips(client) == before + 1


def test_async_closed_success_path_makes_no_round_trip(client: redis.Redis) -> None:
    """The async driver uses the same cache."""
    b = breaker(RedisStore(client), FakeClock())

    @b
    async def aok() -> str:
        return "ok"

    async def main() -> list[str]:
        first = [await aok()]
        before = round_trips(client)
        rest = [await aok() for _ in range(200)]
        assert round_trips(client) == before
        return first + rest

    assert asyncio.run(main()) == ["ok"] * 201


def test_refresh_zero_reads_redis_on_every_call(client: redis.Redis) -> None:
    """refresh=0: no cache at all."""
    b = breaker(RedisStore(client, refresh=0))
    b.call(ok)
    before = round_trips(client)
    for _ in range(10):
        b.call(ok)
    assert round_trips(client) == before + 10


def test_a_stale_process_learns_of_an_opening_within_the_freshness_bound(
    client: redis.Redis,
) -> None:
    """A process admits calls from a fresh cache; once stale, it reads the opening."""
    store = RedisStore(client, refresh=0.5)
    clock_b = FakeClock()
    a, b = breaker(store), breaker(store, clock_b)
    b.call(ok)
    a.open()
    assert b.call(ok) == "ok"  # within the bound: b still acts on what it read
    clock_b.advance(0.5)
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)


def test_a_failure_always_reads_the_shared_state(client: redis.Redis) -> None:
    """A failure is a round trip, and its reply refreshes the cache at once."""
    store = RedisStore(client, refresh=60.0)
    a, b = breaker(store), breaker(store)
    b.call(ok)
    a.open()
    fail(b)  # admitted from b's cache, counted nowhere (the closed period ended)
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)


def test_an_open_circuit_rejects_without_round_trips(client: redis.Redis) -> None:
    """Rejections come from the cache while it is fresh: an outage does not hammer Redis."""
    b = breaker(RedisStore(client), reset_timeout=600.0)
    fail(b, 3)
    before = round_trips(client)
    for _ in range(100):
        with pytest.raises(rs.CircuitOpenError) as info:
            b.call(ok)
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 600.0
    assert round_trips(client) == before


# --- one clock: the server's ------------------------------------------------------------


def test_host_clock_skew_cannot_move_the_open_period(client: redis.Redis) -> None:
    """Processes whose clocks disagree by days agree on the open period: it is Redis's."""
    store = RedisStore(client)
    behind = breaker(store, FakeClock(start=0.0), reset_timeout=600.0)
    ahead = breaker(store, FakeClock(start=10 * 86_400.0), reset_timeout=600.0)
    fail(behind, 3)
    for b in (behind, ahead):
        with pytest.raises(rs.CircuitOpenError) as info:
            b.call(ok)
        assert info.value.retry_after is not None
        assert 590.0 < info.value.retry_after <= 600.0


def test_half_open_begins_when_the_servers_period_ends(client: redis.Redis) -> None:
    """A short real open period: rejected until Redis's clock passes it, then a probe runs.

    One second: long enough that a loaded machine cannot let it pass between
    the opening and the first call (0.1 s could, under CI's load).
    """
    clock = FakeClock()
    b = breaker(RedisStore(client, refresh=0), clock, reset_timeout=1.0)
    b.open()
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)  # the local clock never moves: only the server's time can end the period
    until(lambda: client.pttl("resilience:circuit:{api}") < 3_600_000, "the open period to end")
    with capture_events() as events:
        assert b.call(ok) == "ok"
    assert events_named(events) == ["CircuitHalfOpened", "CircuitClosed"]


# --- half-open: leased probes ---------------------------------------------------------------


def test_half_open_admits_exactly_the_probes_across_stores(client: redis.Redis) -> None:
    """Four stores (processes) on a half-open circuit: exactly half_open_max_calls probes."""
    store = RedisStore(client, refresh=0)
    breakers = [
        breaker(store, reset_timeout=0.0, half_open_max_calls=2, success_threshold=2)
        for _ in range(4)
    ]
    breakers[0].open()
    permits = [b._store.acquire() for b in breakers for _ in range(3)]
    admitted = [p for p in permits if isinstance(p, rs.CircuitPermit)]
    assert len(admitted) == 2
    rejected = [p for p in permits if isinstance(p, rs.CircuitRejection)]
    assert {r.state for r in rejected} == {rs.CircuitState.HALF_OPEN}


def test_successful_probes_close_the_circuit(client: redis.Redis) -> None:
    """success_threshold probe successes close it, for every process."""
    store = RedisStore(client, refresh=0)
    a = breaker(store, reset_timeout=0.0, half_open_max_calls=2, success_threshold=2)
    b = breaker(store, reset_timeout=0.0, half_open_max_calls=2, success_threshold=2)
    a.open()
    with capture_events() as events, a:
        with b:
            pass
        assert state(b) is rs.CircuitState.HALF_OPEN
    assert events_named(events) == ["CircuitHalfOpened", "CircuitClosed"]
    assert state(a) is state(b) is rs.CircuitState.CLOSED


def test_a_failed_probe_reopens(client: redis.Redis) -> None:
    """One failed probe opens the circuit again, with the next period of the backoff."""
    store = RedisStore(client, refresh=0)
    b = breaker(
        store,
        reset_timeout=rs.backoff.exponential(initial=100.0, max=1000.0, jitter=rs.backoff.none),
    )
    b.open()
    assert client.hget("resilience:circuit:{api}", "d") == b"100.0"
    client.hset("resilience:circuit:{api}", "u", "0")  # end the period now
    fail(b)
    assert state(b) is rs.CircuitState.OPEN
    assert client.hmget("resilience:circuit:{api}", "n", "d") == [b"2", b"200.0"]


def test_an_ignored_probe_gives_its_lease_back(client: redis.Redis) -> None:
    """A probe ending without an outcome returns its place at once."""
    store = RedisStore(client, refresh=0)
    a, b = breaker(store, reset_timeout=0.0), breaker(store, reset_timeout=0.0)
    a.open()
    with pytest.raises(Other):
        a.call(lambda: (_ for _ in ()).throw(Other()))
    assert client.zcard("resilience:circuit:{api}:leases") == 0
    assert b.call(ok) == "ok"


def test_a_dead_probes_lease_expires(client: redis.Redis) -> None:
    """A process that dies holding a probe frees its place after probe_lease seconds."""
    # One second: a loaded machine cannot let it pass before the other call is refused.
    store = RedisStore(client, refresh=0, probe_lease=1.0)
    dead, alive = breaker(store, reset_timeout=0.0), breaker(store, reset_timeout=0.0)
    dead.open()
    permit = dead._store.acquire()  # the probe of a process that will never report
    assert isinstance(permit, rs.CircuitPermit)
    with pytest.raises(rs.CircuitOpenError):
        alive.call(ok)
    until(lambda: _live_leases(client) == 0, "the lease to expire on the server's clock")
    assert alive.call(ok) == "ok"
    # The dead probe's late outcome belongs to nothing any more.
    assert dead._store.on_failure(permit, None) == ()
    assert state(alive) is rs.CircuitState.CLOSED


def _live_leases(client: redis.Redis) -> int:
    """Leases whose expiry (scored in server microseconds) is still ahead of Redis's TIME."""
    script = (
        "local t = redis.call('TIME') "
        "return redis.call('ZCOUNT', KEYS[1], '(' .. t[1] .. string.format('%06d', t[2]), '+inf')"
    )
    return int(client.eval(script, 1, "resilience:circuit:{api}:leases"))


def test_outcomes_of_ended_periods_change_nothing(client: redis.Redis) -> None:
    """Late closed-state failures do not extend an open period nor count later."""
    store = RedisStore(client, refresh=0)
    a = breaker(store, reset_timeout=600.0)
    permit = a._store.acquire()
    assert isinstance(permit, rs.CircuitPermit)
    a.open()
    a.close()
    assert a._store.on_failure(permit, None) == ()
    assert client.hget("resilience:circuit:{api}", "f") == b"0"


# --- manual control ----------------------------------------------------------------------


def test_manual_control_is_shared(client: redis.Redis) -> None:
    """open, isolate, close and reset act on the fleet's circuit."""
    store = RedisStore(client, refresh=0)
    a, b = breaker(store), breaker(store)
    with capture_events() as events:
        a.isolate()
        assert state(b) is rs.CircuitState.ISOLATED
        a.open()  # isolation holds
        assert state(b) is rs.CircuitState.ISOLATED
        b.close()
        assert state(a) is rs.CircuitState.CLOSED
        a.open()
        assert state(b) is rs.CircuitState.OPEN
        b.reset()
        b.reset()  # already closed: no event
        assert state(a) is rs.CircuitState.CLOSED
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("CircuitOpened", "isolated"),
        ("CircuitClosed", "manual"),
        ("CircuitOpened", "manual"),
        ("CircuitClosed", "reset"),
    ]
    with pytest.raises(ValueError, match="half-open only when its open period ends"):
        a._store.force(rs.CircuitState.HALF_OPEN)


# --- windows ------------------------------------------------------------------------------


def test_a_local_failure_rate_opens_the_shared_circuit(client: redis.Redis) -> None:
    """Rates are judged on this process's calls; the opening they cause is shared."""
    store = RedisStore(client)
    a = breaker(store, failure_threshold=None, trip=rs.FailureRate(0.5, calls=4))
    b = breaker(store, failure_threshold=None, trip=rs.FailureRate(0.5, calls=4))
    a.call(ok)
    a.call(ok)
    fail(a)
    with capture_events() as events:
        fail(a)
    assert [getattr(e, "reason", None) for e in events] == ["failure_rate"]
    assert state(b) is rs.CircuitState.OPEN


def test_a_slow_probe_fails(client: redis.Redis) -> None:
    """A probe slower than the strictest slower_than reopens the circuit."""
    clock = FakeClock()
    b = breaker(
        RedisStore(client, refresh=0),
        clock,
        failure_threshold=None,
        reset_timeout=0.0,
        trip=rs.SlowCallRate(1.0, slower_than=1.0, calls=10),
    )
    b.open()
    with capture_events() as events:
        b.call(lambda: clock.advance(2.0))
    assert [getattr(e, "reason", None) for e in events] == [None, "half_open_failure"]


# --- every shape -----------------------------------------------------------------------


def test_every_driver_records_through_redis(client: redis.Redis, mode: Runner) -> None:
    """Sync and async calls count toward the shared circuit alike."""
    b = breaker(RedisStore(client))
    failing = b(mode.make(boom))
    for _ in range(3):
        with pytest.raises(Boom):
            mode.run(failing)
    with pytest.raises(rs.CircuitOpenError):
        mode.run(b(mode.make(ok)))


def test_streams_are_admitted_and_recorded(client: redis.Redis) -> None:
    """Generator functions: admitted at the first item, recorded at the end."""
    b = breaker(RedisStore(client), failure_threshold=1)

    @b
    def stream() -> Any:
        yield 1
        raise Boom

    with pytest.raises(Boom):
        list(stream())
    assert state(b) is rs.CircuitState.OPEN


# --- Redis unreachable ----------------------------------------------------------------


def test_unreachable_from_the_start_falls_back_to_local(redis_server: RedisServer) -> None:
    """No Redis at all: calls run on a local circuit, StoreUnavailable once, no Redis error."""
    from .redis_server import free_port

    client = make_client(f"redis://127.0.0.1:{free_port()}/0")
    clock = FakeClock()
    b = breaker(RedisStore(client), clock)
    with capture_events() as events:
        assert b.call(ok) == "ok"
        fail(b, 3)
        with pytest.raises(rs.CircuitOpenError):
            b.call(ok)
        assert state(b) is rs.CircuitState.OPEN
    names = events_named(events)
    assert names.count("StoreUnavailable") == 1
    assert names[-2:] == ["CircuitOpened", "CallRejected"]
    (lost,) = (e for e in events if isinstance(e, StoreUnavailable))
    assert lost.name == "api"
    assert lost.fallback == "local"
    assert isinstance(lost.error, redis.exceptions.ConnectionError)


@pytest.mark.parametrize("fallback", ["admit", "reject"])
def test_fallback_admit_or_reject(own_server: RedisServer, fallback: str) -> None:
    """fallback='admit' runs every call uncounted; 'reject' refuses every call."""
    client = make_client(own_server.url)
    b = breaker(RedisStore(client, refresh=0, fallback=fallback))  # type: ignore[arg-type]
    b.call(ok)
    own_server.kill()
    if fallback == "admit":
        fail(b, 10)
        assert b.call(ok) == "ok"
        assert state(b) is rs.CircuitState.CLOSED
    else:
        with pytest.raises(rs.CircuitOpenError) as info:
            b.call(ok)
        assert info.value.retry_after is None
        assert state(b) is rs.CircuitState.OPEN


def test_killing_redis_mid_run_falls_back_and_recovers(own_server: RedisServer) -> None:
    """8 threads calling while Redis is killed: no Redis error escapes, one event, recovery."""
    client = make_client(own_server.url)
    clock = FakeClock()
    store = RedisStore(client, refresh=0.25, reconnect=5.0)
    b = breaker(store, clock, failure_threshold=1_000_000)
    events: list[rs.Event] = []
    lock = threading.Lock()

    def hook(event: rs.Event) -> None:
        with lock:
            events.append(event)

    rs.set_hooks([hook])
    calls = 0
    killed = threading.Event()
    outcomes: collections.Counter[str] = collections.Counter()

    def worker(seed: int) -> None:
        nonlocal calls
        local: collections.Counter[str] = collections.Counter()
        for i in range(400):
            with lock:
                calls += 1
                if calls == 1200:
                    own_server.kill()
                    killed.set()
            if i % 50 == 0:
                clock.advance(0.25)
            try:
                b.call(boom if (i + seed) % 3 == 0 else ok)
                local["ok"] += 1
            except Boom:
                local["boom"] += 1
        with lock:
            outcomes.update(local)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert killed.is_set()
    assert sum(outcomes.values()) == 3200  # every call ran; nothing raised but the calls' own
    assert events_named(events).count("StoreUnavailable") == 1
    assert "StoreRecovered" not in events_named(events)
    # Back up (an empty server on the same port): the next attempt after reconnect uses it.
    own_server.start(own_server.port)
    clock.advance(5.0)
    events.clear()
    fail(b)
    assert events_named(events) == ["StoreRecovered"]
    recovered = events[0]
    assert isinstance(recovered, StoreRecovered)
    assert recovered.downtime >= 5.0
    assert client.hget("resilience:circuit:{api}", "f") == b"1"


def test_the_local_fallback_starts_from_the_last_shared_state(own_server: RedisServer) -> None:
    """An open shared circuit stays open locally when Redis goes away."""
    client = make_client(own_server.url)
    b = breaker(RedisStore(client, refresh=0), reset_timeout=600.0)
    b.open()
    own_server.kill()
    with capture_events() as events, pytest.raises(rs.CircuitOpenError):
        b.call(ok)
    assert events_named(events) == ["StoreUnavailable", "CallRejected"]


def test_manual_control_while_redis_is_down_is_local(own_server: RedisServer) -> None:
    """open() during an outage opens this process's fallback circuit."""
    client = make_client(own_server.url)
    b = breaker(RedisStore(client, refresh=0))
    b.call(ok)
    own_server.kill()
    b.open()
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)
    b.reset()
    assert b.call(ok) == "ok"


@pytest.mark.parametrize("loss", ["flushall", "expired"])
@pytest.mark.parametrize("was", ["closed", "open"])
def test_a_lost_circuit_starts_afresh_and_counts_again(
    client: redis.Redis, loss: str, was: str
) -> None:
    """The circuit's key gone (flushed, expired, a restarted server): a new closed period
    that running processes adopt, so failures count and open it again; not a cache
    that discards every later reply as older news."""
    clock = FakeClock()
    b = breaker(RedisStore(client, refresh=0.0), clock=clock, failure_threshold=2)
    b.open()
    if was == "closed":
        b.close()  # the period id is now a server time, far above 0
    if loss == "flushall":
        client.flushall()
    else:
        client.delete("resilience:circuit:{api}", "resilience:circuit:{api}:leases")
    assert b.call(ok) == "ok"
    assert state(b) is rs.CircuitState.CLOSED
    fail(b, 2)
    assert state(b) is rs.CircuitState.OPEN
    with pytest.raises(rs.CircuitOpenError):
        b.call(ok)


def test_a_rolled_back_circuit_is_adopted_and_counts_again(client: redis.Redis) -> None:
    """#18.1: Redis back at an older period (a restore, a lagging replica): the process
    adopts it, says so once, and its failures open the circuit again."""
    b = breaker(RedisStore(client), failure_threshold=3)
    b.open()
    b.close()  # the cached period id is now a server time
    client.hset("resilience:circuit:{api}", "g", 1)  # an older snapshot of the circuit
    with capture_events() as events:
        for _ in range(30):
            try:
                b.call(boom)
            except (Boom, rs.CircuitOpenError):
                pass
    assert state(b) is rs.CircuitState.OPEN
    assert events_named(events).count("StoreRolledBack") == 1
    assert events_named(events).count("CircuitOpened") == 1


def test_after_a_rollback_the_cache_answers_again(client: redis.Redis) -> None:
    """#18.1: once the older state is adopted, closed successes make no round trip."""
    clock = FakeClock()
    b = breaker(RedisStore(client), clock=clock)
    b.open()
    b.close()
    client.hset("resilience:circuit:{api}", "g", 1)
    clock.advance(1.0)  # the cache is stale: the next call asks Redis
    assert b.call(ok) == "ok"
    before = round_trips(client)
    for _ in range(10):
        assert b.call(ok) == "ok"
    assert round_trips(client) == before


def test_a_reply_that_lost_a_race_is_not_a_rollback(client: redis.Redis) -> None:
    """#18.1: a reply to a round trip begun before the cache learned a newer period is old news."""
    b = breaker(RedisStore(client))
    store = b._store
    assert isinstance(store, RedisCircuitStore)
    begun = store._replies
    stale = store._eval(store._read_script, (), False)
    assert stale is not None
    b.open()  # a newer period, learned after the round trip above began
    with capture_events() as events:
        store._apply(stale, begun)  # its reply arrives last
    assert events_named(events) == []
    assert state(b) is rs.CircuitState.OPEN


def test_an_outcome_redis_runs_after_the_client_gave_up_changes_nothing(
    own_server: RedisServer,
) -> None:
    """#18.2: a failure whose round trip timed out (Redis asleep) is not applied when Redis
    wakes: no opening that nobody announced."""
    store = RedisStore.from_url(own_server.url, timeout=STALL_TIMEOUT)
    admin = make_client(own_server.url, socket_timeout=WAIT)
    b = breaker(store, failure_threshold=2)
    with capture_events() as events:
        fail(b)  # counted in Redis; the process learns the server's time
        sleeper = put_to_sleep(own_server.url, STALL)
        fail(b)  # times out on the client: Redis is asleep
        admin.ping()  # Redis awake, and every request queued meanwhile run
        sleeper.close()
    assert "StoreUnavailable" in events_named(events)
    assert "CircuitOpened" not in events_named(events)
    shared = admin.hgetall("resilience:circuit:{api}")
    assert (shared[b"s"], shared[b"f"]) == (b"c", b"1")


def test_an_opening_whose_reply_was_lost_is_announced_once_by_its_opener(
    own_server: RedisServer,
) -> None:
    """#18.2: Redis ran the opening failure but its reply came after the client gave up:
    the opener announces the opening with its next reply, once; no other store does."""
    clock = FakeClock()
    a = breaker(
        RedisStore.from_url(own_server.url, timeout=STALL_TIMEOUT), clock=clock, failure_threshold=2
    )
    store = a._store
    assert isinstance(store, RedisCircuitStore)
    # No deadline: the request runs whenever Redis wakes, as one run in time whose
    # reply is held back past the client's timeout (a slow command between the two).
    store._late_after = 0
    admin = make_client(own_server.url, socket_timeout=WAIT)
    other = breaker(RedisStore(admin), clock=clock)
    key = "resilience:circuit:{api}"
    with capture_events() as events:
        fail(a)
        sleeper = put_to_sleep(own_server.url, STALL)
        fail(a)  # times out on the client; Redis runs it when it wakes: the circuit opens
        admin.ping()
        sleeper.close()
        assert admin.hget(key, "s") == b"o"
        assert "CircuitOpened" not in events_named(events)
        for _ in range(2):  # the other store sees the opening: it rejects, announces nothing
            with pytest.raises(rs.CircuitOpenError):
                other.call(ok)
        clock.advance(RedisStore(admin).reconnect)  # the opener tries Redis again
        for _ in range(2):
            with pytest.raises(rs.CircuitOpenError):
                a.call(ok)
    opened = [e for e in events if isinstance(e, rs.CircuitOpened)]
    assert len(opened) == int(admin.hget(key, "n") or 0) == 1
    assert (opened[0].name, opened[0].reason) == ("api", "failures")


def test_an_opening_is_announced_once_when_its_reply_arrives(client: redis.Redis) -> None:
    """#18.2: the opener's own reply announces the opening; its later replies do not again."""
    clock = FakeClock()
    a = breaker(RedisStore(client, refresh=0.0), clock=clock, failure_threshold=1)
    with capture_events() as events:
        fail(a)
        for _ in range(3):  # each a round trip (no cache), each showing the same opening
            with pytest.raises(rs.CircuitOpenError):
                a.call(ok)
    assert events_named(events).count("CircuitOpened") == 1


def test_an_opening_shown_first_by_another_threads_reply_is_announced_once(
    client: redis.Redis,
) -> None:
    """#18.2: when another thread's reply shows the opening first, it announces it, and the
    opening's own reply, arriving after, announces nothing."""
    store = breaker(RedisStore(client))._store
    assert isinstance(store, RedisCircuitStore)
    opening = (7, "failures", 60.0)
    shown: Any = (rs.CircuitState.OPEN, 7, 0, 0.0, 1, 60.0, "", False, -1, False, None, opening)
    made = (*shown[:6], "o:failures", *shown[7:])
    with capture_events() as events:
        store._claim(shown)  # another thread's call, its reply first
        assert store._transitions(store._claim(made)) == ()
    assert events_named(events) == ["CircuitOpened"]


# --- what opened the circuit (#18.7) -------------------------------------------------------


class Leaked(Exception):
    """A failure whose message quotes a credential."""


def test_a_rejection_says_what_opened_the_circuit_in_another_store(client: redis.Redis) -> None:
    """#18.7: a failure in store A opens the circuit; store B's rejection names it."""
    a = breaker(RedisStore(client), failure_threshold=1)
    b = breaker(RedisStore(client), failure_threshold=1)
    fail(a)
    with pytest.raises(rs.CircuitOpenError) as caught:
        b.call(ok)
    error = caught.value
    assert (error.failure_type, error.failure_message) == ("Boom", "")
    assert str(error).endswith("; opened by Boom")


def test_the_cause_travels_with_the_opening_failure(client: redis.Redis) -> None:
    """#18.7: the cause is stored by the round trip that opens the circuit, no extra one."""
    a = breaker(RedisStore(client), failure_threshold=1)
    a.call(ok)  # the period is read
    before = round_trips(client)

    def refused() -> None:
        raise ConnectionError("connection refused")

    with pytest.raises(ConnectionError):
        rs.CircuitBreaker(
            on=ConnectionError, name="api", store=RedisStore(client), failure_threshold=1
        ).call(refused)
    assert round_trips(client) - before == 2  # the second store's first read, and the failure
    assert client.hget("resilience:circuit:{api}", "c") == b"ConnectionError\nconnection refused"
    with pytest.raises(rs.CircuitOpenError, match="opened by ConnectionError: connection refused"):
        b = breaker(RedisStore(client))
        b.call(ok)


def test_a_secret_in_the_cause_is_redacted_in_redis_and_in_the_error(
    client: redis.Redis,
) -> None:
    """#18.7: a key or a Bearer token in the failure's message never reaches Redis."""
    a = rs.CircuitBreaker(on=Leaked, name="api", store=RedisStore(client), failure_threshold=1)

    def leak() -> None:
        raise Leaked("401 for sk-abc123secret456 with Authorization: Bearer tok3n-s3cret-value")

    with pytest.raises(Leaked):
        a.call(leak)
    shared = client.hget("resilience:circuit:{api}", "c")
    assert isinstance(shared, bytes)
    assert shared.startswith(b"Leaked\n")
    assert b"abc123secret456" not in shared
    assert b"tok3n-s3cret" not in shared
    with pytest.raises(rs.CircuitOpenError) as caught:
        breaker(RedisStore(client)).call(ok)
    text = str(caught.value)
    assert "opened by Leaked: 401 for sk-***" in text
    assert "abc123secret456" not in text
    assert "tok3n-s3cret" not in text


def test_a_long_cause_is_cut(client: redis.Redis) -> None:
    """#18.7: the cause kept in Redis is bounded (200 characters of message)."""
    a = rs.CircuitBreaker(on=Leaked, name="api", store=RedisStore(client), failure_threshold=1)

    def long() -> None:
        raise Leaked("x" * 10_000)

    with pytest.raises(Leaked):
        a.call(long)
    assert len(client.hget("resilience:circuit:{api}", "c") or b"") == len("Leaked\n") + 200


def test_a_rejection_from_redis_pickles_with_its_cause(client: redis.Redis) -> None:
    """#18.7: the error of a Redis rejection pickles, cause and message intact."""
    fail(breaker(RedisStore(client), failure_threshold=1))
    with pytest.raises(rs.CircuitOpenError) as caught:
        breaker(RedisStore(client)).call(ok)
    clone = pickle.loads(pickle.dumps(caught.value))
    assert (clone.failure_type, clone.failure_message) == ("Boom", "")
    assert str(clone) == str(caught.value)


def test_a_circuit_opened_by_hand_in_redis_names_no_cause(client: redis.Redis) -> None:
    """#18.7: open() is no failure: the cause of an earlier opening is gone."""
    a = breaker(RedisStore(client), failure_threshold=1)
    fail(a)
    a.close()
    a.open()
    with pytest.raises(rs.CircuitOpenError) as caught:
        breaker(RedisStore(client)).call(ok)
    assert caught.value.failure_type is None


def test_a_half_open_rejection_keeps_the_cause(client: redis.Redis) -> None:
    """#18.7: while the probe runs, the other calls are told what opened the circuit."""
    a = breaker(RedisStore(client), failure_threshold=1, reset_timeout=0.0)
    fail(a)  # open, for no time: the next call is the probe
    b = breaker(RedisStore(client))
    caught: list[rs.CircuitOpenError] = []

    def probe() -> str:
        with pytest.raises(rs.CircuitOpenError) as inner:
            b.call(ok)
        caught.append(inner.value)
        return "ok"

    assert a.call(probe) == "ok"
    assert caught[0].failure_type == "Boom"


# --- a fleet of processes -----------------------------------------------------------------


# Python 3.12+ warns when forking a process that has threads; other tests may
# have left a daemon thread behind, which this test does not touch.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_four_processes_admit_exactly_the_probes(
    client: redis.Redis, redis_server: RedisServer, method: Literal["spawn", "fork"]
) -> None:
    """4 processes x 2 threads on a half-open circuit: exactly half_open_max_calls probes run.

    Also with processes forked from one that imported the store (a
    multiprocessing pool, gunicorn --preload): each draws its own lease ids.
    """
    from . import redis_fleet

    probes, calls = 3, 200
    store = RedisStore(client)  # imported and used before the fork
    setup = breaker(store, reset_timeout=0.0, half_open_max_calls=probes)
    setup.open()
    ctx = (
        multiprocessing.get_context("fork")
        if method == "fork"
        else multiprocessing.get_context("spawn")
    )
    start = ctx.Barrier(4 * redis_fleet.THREADS)
    release = ctx.Event()
    admitted = ctx.Value("i", 0)
    finished = ctx.Value("i", 0)
    results: Any = ctx.Queue()
    processes = [
        ctx.Process(
            target=redis_fleet.probe_worker,
            args=(
                redis_server.url,
                "resilience",
                "api",
                probes,
                calls,
                start,
                release,
                admitted,
                finished,
                results,
            ),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    try:
        # Every thread has either been rejected `calls` times or is holding a probe.
        until(
            lambda: finished.value + admitted.value == 4 * redis_fleet.THREADS,
            "every thread to finish or hold a probe",
        )
        held = admitted.value
        release.set()
        reports = [results.get(timeout=WAIT) for _ in processes]
    finally:
        release.set()
        join_all(processes)
    assert held == probes
    tallies: collections.Counter[str] = collections.Counter()
    events: collections.Counter[str] = collections.Counter()
    for report in reports:
        tallies.update(report["tallies"])
        events.update(report["events"])
    assert tallies["ok"] == probes
    assert tallies["rejected"] == (4 * redis_fleet.THREADS - probes) * calls
    # One half-opening and one closing for the whole fleet, each announced once.
    assert events["CircuitHalfOpened"] == 1
    assert events["CircuitClosed"] == 1
    assert client.hget("resilience:circuit:{api}", "s") == b"c"
    assert all(process.exitcode == 0 for process in processes)


def test_four_processes_conserve_the_failure_count(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    """4 processes x 2 threads x 25 failures: the shared count is exactly 200, then it opens."""
    from . import redis_fleet

    per_thread = 25
    total = 4 * redis_fleet.THREADS * per_thread
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4 * redis_fleet.THREADS)
    results: Any = ctx.Queue()
    processes = [
        ctx.Process(
            target=redis_fleet.failure_worker,
            args=(redis_server.url, "resilience", "api", total + 1, per_thread, start, results),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=WAIT) for _ in processes]
    join_all(processes)
    failed = sum(report["tallies"].get("failed", 0) for report in reports)
    assert failed == total
    assert not any(report["events"] for report in reports)
    assert client.hmget("resilience:circuit:{api}", "s", "f") == [b"c", str(total).encode()]
    b = breaker(RedisStore(client), failure_threshold=total + 1)
    with capture_events() as events:
        fail(b)  # the one failure more opens it: no count was lost nor doubled
    assert [getattr(e, "reason", None) for e in events] == ["failures"]


def test_four_processes_adopt_a_rolled_back_circuit(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    """#18.1: Redis back at an older period: each of 4 processes adopts it, says so once, and
    their failures count again (each loses only the one in flight)."""
    from . import redis_fleet

    per_process = 10
    b = breaker(RedisStore(client), failure_threshold=1000)
    b.open()
    b.close()  # a period every worker reads, with a server-time id
    ctx = multiprocessing.get_context("spawn")
    learned, rolled = ctx.Barrier(5), ctx.Barrier(5)
    results: Any = ctx.Queue()
    processes = [
        ctx.Process(
            target=redis_fleet.rollback_worker,
            args=(redis_server.url, "api", per_process, learned, rolled, results),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    try:
        learned.wait(WAIT)
        client.hset("resilience:circuit:{api}", "g", 1)  # an older snapshot comes back
        rolled.wait(WAIT)
        reports = [results.get(timeout=WAIT) for _ in processes]
    finally:
        join_all(processes)
    assert [report["events"] for report in reports] == [["StoreRolledBack"]] * 4
    assert client.hmget("resilience:circuit:{api}", "s", "f") == [
        b"c",
        str(4 * (per_process - 1)).encode(),
    ]


@pytest.mark.parametrize("deadlines", [True, False], ids=["deadlines", "replies-lost"])
def test_four_processes_announce_each_opening_once_through_a_stall(
    client: redis.Redis, own_server: RedisServer, deadlines: bool
) -> None:
    """#18.2: failures sent while Redis sleeps (their round trips time out) are not applied
    later, or, run with their replies lost, are announced by their opener: the fleet's
    openings and its CircuitOpened events agree."""
    from . import redis_fleet

    ctx = multiprocessing.get_context("spawn")
    counted, asleep, awake = ctx.Barrier(5), ctx.Event(), ctx.Event()
    results: Any = ctx.Queue()
    processes = [
        ctx.Process(
            target=redis_fleet.stall_worker,
            args=(own_server.url, "api", counted, asleep, awake, results, deadlines),
        )
        for _ in range(4)
    ]
    admin = make_client(own_server.url, socket_timeout=WAIT)
    for process in processes:
        process.start()
    try:
        counted.wait(WAIT)  # 4 failures counted: one more opens the circuit
        sleeper = put_to_sleep(own_server.url, STALL)
        asleep.set()  # every worker fails once more: those time out
        admin.ping()  # awake, and what was queued meanwhile has run
        sleeper.close()
        awake.set()
        reports = [results.get(timeout=WAIT) for _ in processes]
    finally:
        asleep.set()
        awake.set()
        join_all(processes)
    events: collections.Counter[str] = collections.Counter()
    for report in reports:
        events.update(report["events"])
    openings = int(admin.hget("resilience:circuit:{api}", "n") or 0)
    # At least one failure was sent while Redis slept (a worker slower than the
    # sleep sends it after: counted as usual, and the test still holds).
    assert events["StoreUnavailable"] >= 1
    assert (openings, events["CircuitOpened"]) == (1, 1)


# --- the events and errors ------------------------------------------------------------


def test_store_events_are_documented_and_pickle_free(client: redis.Redis) -> None:
    """StoreUnavailable and StoreRecovered are events with stable, loggable fields."""
    event = StoreUnavailable(name="api", fallback="local", error=OSError("refused"))
    assert event.fields()["resilience_error"] == "OSError: refused"
    assert "falling back to local" in event.message()
    assert StoreRecovered(name="api", downtime=1.5).fields()["resilience_downtime"] == 1.5
    assert pickle.loads(pickle.dumps(StoreRecovered(name="api", downtime=1.5))).downtime == 1.5


def test_the_store_repr_never_shows_credentials(redis_server: RedisServer) -> None:
    """RedisStore's repr names where the client connects, never its password."""
    client = make_client(redis_server.url.replace("redis://", "redis://user:s3cret@"))
    text = repr(RedisStore(client))
    assert "s3cret" not in text
    assert f"<Redis 127.0.0.1:{redis_server.port} db=0>" in text
