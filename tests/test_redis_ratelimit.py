"""RedisRateLimiter against a real redis-server: one rate limit for every process (issue #12)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import until
from .redis_server import RedisServer, free_port, make_client
from .threads import join_all

pytest.importorskip("redis", reason="the redis package is not installed")

import redis

from resilience.integrations.redis import (
    RedisRateLimiter,
    RedisStore,
    StoreRecovered,
    StoreUnavailable,
)

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:ratelimit:{llm}"


def limiter(
    client: redis.Redis, clock: FakeClock | None = None, *, store: Any = None, **options: Any
) -> RedisRateLimiter:
    options.setdefault("name", "llm")
    options.setdefault("rate", 5)
    options.setdefault("per", 600.0)  # 2 minutes per unit: nothing comes back during a test
    store = store or RedisStore(client)
    return RedisRateLimiter(store=store, clock=clock or FakeClock(), **options)


def take(r: RedisRateLimiter, n: int) -> int:
    """Ask *n* times through ``call``; return how many calls ran."""
    ran = 0
    for _ in range(n):
        try:
            r.call(lambda: None)
        except rs.RateLimitedError:
            continue
        ran += 1
    return ran


def commands(client: redis.Redis) -> int:
    """Scripts the server has run so far (INFO commandstats)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval")
    )


def test_two_processes_share_one_bucket(client: redis.Redis, other: redis.Redis) -> None:
    """burst=5, max_wait=0: five calls in all, whichever process asks; then both are refused."""
    a = limiter(client, max_wait=0)
    b = limiter(other, max_wait=0)
    assert take(a, 3) == 3
    assert take(b, 4) == 2
    with pytest.raises(rs.RateLimitedError) as info:
        a.call(lambda: None)
    # 600 s / 5 per unit, less the time the calls took (seconds, on a loaded machine)
    assert info.value.retry_after == pytest.approx(120.0, abs=2.0)


def test_waiters_across_processes_reserve_slots_in_turn(
    client: redis.Redis, other: redis.Redis
) -> None:
    """Once the bucket is empty, each caller anywhere waits one interval more than the last."""
    clock = FakeClock()
    # 1000 s per unit: the server's clock, running between the calls (more than 10 ms on a
    # loaded machine), is a rounding error.
    a = limiter(client, clock, burst=1, rate=10, per=10_000.0)
    b = limiter(other, clock, burst=1, rate=10, per=10_000.0)
    with capture_events() as events:
        a.call(lambda: None)
        waits = [r.admit(None) for r in (b, a, b)]
    assert [w.seconds for w in waits] == pytest.approx([1000.0, 2000.0, 3000.0], abs=5.0)
    delays = [e.delay for e in events if isinstance(e, rs.RateLimitWaited)]
    assert delays == pytest.approx([1000.0, 2000.0, 3000.0], abs=5.0)


def test_one_round_trip_per_call(client: redis.Redis) -> None:
    """Each call is one script on the server; nothing else is sent."""
    r = limiter(client, rate=1000)
    r.call(lambda: None)  # loads the script (EVALSHA answered NOSCRIPT, then EVAL)
    before = commands(client)
    for _ in range(10):
        r.call(lambda: None)
    assert commands(client) == before + 10


def test_the_key_is_namespaced_and_expires_once_the_bucket_is_full(client: redis.Redis) -> None:
    """One string, a hash tag on the name, living until its bucket would be full again."""
    r = limiter(client, store=RedisStore(client, prefix="billing"), rate=60, per=60.0, burst=60)
    r.call(lambda: None)
    assert client.keys() == [b"billing:ratelimit:{llm}"]
    assert client.type("billing:ratelimit:{llm}") == b"string"
    assert 1_000 <= client.pttl("billing:ratelimit:{llm}") <= 2_000  # one unit's second + 1 s


def test_a_cancelled_waiter_gives_its_units_back_to_the_fleet(client: redis.Redis) -> None:
    """The last reservation, cancelled while it waits: the shared arrival time is as before."""
    r = limiter(client, clock=rs.engine.SYSTEM_CLOCK, burst=1)  # type: ignore[arg-type]
    r.call(lambda: None)
    before = client.get(KEY)

    async def main() -> None:
        task = asyncio.create_task(r.acall(asyncio.sleep, 0))
        await until(lambda: client.get(KEY) != before)  # its slot is reserved: it waits
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    after = client.get(KEY)
    assert isinstance(after, bytes)
    assert isinstance(before, bytes)
    assert float(after) == pytest.approx(float(before))


def test_threads_of_two_processes_never_take_more_than_the_bucket(
    client: redis.Redis, other: redis.Redis
) -> None:
    """8 threads through two limiter objects, max_wait=0: exactly the burst overall."""
    a = limiter(client, max_wait=0, burst=25, rate=25)
    b = limiter(other, max_wait=0, burst=25, rate=25)
    ran: list[int] = []
    lock = threading.Lock()

    def worker(r: RedisRateLimiter) -> None:
        n = take(r, 20)
        with lock:
            ran.append(n)

    threads = [threading.Thread(target=worker, args=(r,)) for r in (a, b) * 4]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert sum(ran) == 25


def test_a_deadline_refuses_a_wait_that_would_end_after_it(client: redis.Redis) -> None:
    """Inside a Timeout of 1 s, a wait of 2 minutes is refused, and nothing is reserved."""
    clock = FakeClock()
    r = limiter(client, clock, burst=1)
    r.call(lambda: None)
    stamp = client.get(KEY)
    with pytest.raises(rs.RateLimitedError), rs.Timeout(1.0, clock=clock):
        r.call(lambda: None)
    assert client.get(KEY) == stamp


def test_decorates_coroutines_too(client: redis.Redis) -> None:
    """An async function: admitted, then refused once the bucket is empty."""
    r = limiter(client, max_wait=0, burst=1)

    @r
    async def ask() -> str:
        return "ok"

    assert asyncio.run(ask()) == "ok"
    with pytest.raises(rs.RateLimitedError):
        asyncio.run(ask())


# --- Redis unreachable -----------------------------------------------------------------------


def test_redis_down_falls_back_to_a_local_share_and_recovers(own_server: RedisServer) -> None:
    """share=0.4 of burst 5: two calls locally; one StoreUnavailable; StoreRecovered later."""
    clock = FakeClock()
    client = make_client(own_server.url)
    r = limiter(client, clock, store=RedisStore(client, reconnect=5.0), max_wait=0, share=0.4)
    assert take(r, 1) == 1  # Redis
    own_server.kill()
    with capture_events() as events:
        assert take(r, 5) == 2  # this process alone: 0.4 x 5
    lost = [e for e in events if isinstance(e, StoreUnavailable)]
    assert [(e.name, e.fallback) for e in lost] == [("llm", "local")]
    own_server.start(own_server.port)
    clock.advance(5.0)
    with capture_events() as events:
        assert take(r, 5) == 5  # a fresh shared bucket on the restarted server
    assert [type(e) for e in events if isinstance(e, StoreRecovered)] == [StoreRecovered]


@pytest.mark.parametrize(("fallback", "ran"), [("admit", 5), ("reject", 0)])
def test_redis_unreachable_admit_or_reject(
    redis_server: RedisServer, fallback: str, ran: int
) -> None:
    """Nothing listens: every call is admitted, or refused; no Redis error escapes."""
    client = make_client(f"redis://127.0.0.1:{free_port()}/0")
    r = limiter(client, fallback=fallback, hooks=[lambda e: None])
    assert take(r, 5) == ran


# --- configuration ---------------------------------------------------------------------------


def test_settings_repr_and_explain(client: redis.Redis) -> None:
    """Its settings, a repr without the client, explain() saying it is fleet-wide."""
    store = RedisStore(client)
    r = RedisRateLimiter(name="llm", store=store, rate=500, burst=50, max_wait=2.0)
    assert (r.name, r.store, r.rate, r.per, r.burst, r.max_wait, r.fallback, r.share) == (
        "llm",
        store,
        500.0,
        60.0,
        50.0,
        2.0,
        "local",
        1.0,
    )
    assert repr(r) == "RedisRateLimiter(name='llm', rate=500, per=60, burst=50, fallback='local')"
    assert "for the whole fleet" in r.explain()
    assert "one Redis round trip per call" in r.explain()
    assert RedisRateLimiter.__module__ == "resilience.integrations.redis"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"name": ""}, ValueError, "needs a name"),
        ({"name": "a{b}"}, ValueError, "name must not contain braces"),
        ({"store": "redis"}, TypeError, "store must be a RedisStore"),
        ({"rate": 0}, ValueError, "rate must be a finite number > 0"),
        ({"per": -1}, ValueError, "per must be"),
        ({"cost": 50}, ValueError, r"cost must be <= burst"),
        ({"fallback": "open"}, ValueError, "fallback must be 'local', 'admit' or 'reject'"),
        ({"share": 0}, ValueError, r"share must be in \(0, 1\]"),
        ({"share": "1"}, TypeError, "share must be a number"),
        ({"max_wait": -1}, ValueError, "max_wait"),
    ],
)
def test_bad_configuration_names_the_parameter(
    client: redis.Redis, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"name": "llm", "store": RedisStore(client), "rate": 5, **options}
    with pytest.raises(error, match=match):
        RedisRateLimiter(**arguments)


def test_the_fleet_docs_example_runs(redis_server: RedisServer, client: redis.Redis) -> None:
    """docs/fleet.md's blocks, as written; the rate limiter's against the session's server."""
    from .docs_blocks import run_page

    ns = run_page("fleet.md", {"REDIS_URL": redis_server.url, "__name__": "docs_fleet"})
    assert ns["answer"] == "HELLO"
    assert ns["async_answer"] == "HELLO"  # the async twins' block (issue #15)
    assert client.exists("resilience:ratelimit:{saas-api-rpm}") == 1
    assert ns["rpm"].share == 0.25
    assert ns["rpm"].admitted == 1.0


# --- settle= (issue #12, item 2, for the fleet) ----------------------------------------------


def returns(value: float) -> Any:
    """A call whose result is *value*: what ``settle=lambda r: r`` reports as its real cost."""
    return lambda: value


def test_a_settle_above_the_estimate_charges_the_fleet(
    client: redis.Redis, other: redis.Redis
) -> None:
    """burst=5: a call estimated at 1 that cost 3 leaves 2 units for another process."""
    a = limiter(client, max_wait=0, settle=lambda r: r)
    b = limiter(other, max_wait=0)
    assert "one more round trip" in a.explain()
    assert a.call(returns(3)) == 3
    assert take(b, 5) == 2


def test_a_settle_below_the_estimate_refunds_the_fleet_when_last(
    client: redis.Redis, other: redis.Redis
) -> None:
    """cost=4 settled at 1, nobody reserved after it: 4 units left for another process."""
    a = limiter(client, max_wait=0, cost=4, settle=lambda r: r)
    b = limiter(other, max_wait=0)
    a.call(returns(1))
    assert take(b, 5) == 4


def test_a_refund_out_of_turn_is_forfeited(client: redis.Redis, other: redis.Redis) -> None:
    """Another process reserved during the call: the refund would let the fleet overshoot."""
    a = limiter(client, max_wait=0, cost=4, settle=lambda r: r)
    b = limiter(other, max_wait=0)

    def call() -> int:
        assert take(b, 1) == 1  # the last reservation is now b's
        return 1

    a.call(call)
    assert take(b, 5) == 0


def test_a_settle_costs_one_more_round_trip_only_when_the_cost_differs(
    client: redis.Redis,
) -> None:
    """Settled at the estimate: one script; settled otherwise: two."""
    r = limiter(client, rate=1000, settle=lambda result: result)
    r.call(returns(2))  # loads both scripts
    before = commands(client)
    r.call(returns(1))
    assert commands(client) == before + 1
    r.call(returns(2))
    assert commands(client) == before + 3


def test_a_failing_settle_leaves_the_estimate(
    client: redis.Redis, other: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """settle raises: logged at ERROR, the call's result returned, the estimate charged."""

    def settle(result: object) -> float:
        raise KeyError("usage")

    a = limiter(client, max_wait=0, cost=2, settle=settle)
    b = limiter(other, max_wait=0)
    assert a.call(returns(1)) == 1
    assert "settle() failed" in caplog.text
    assert take(b, 5) == 3


def test_the_local_fallback_settles_locally(own_server: RedisServer) -> None:
    """Redis down, fallback "local": the local bucket is charged the real cost."""
    clock = FakeClock()
    client = make_client(own_server.url)
    r = limiter(
        client, clock, store=RedisStore(client, reconnect=60.0), max_wait=0, settle=lambda x: x
    )
    own_server.kill()
    with capture_events():
        assert r.call(returns(3)) == 3  # 3 of the local burst of 5
        ran = 0
        for _ in range(5):
            try:
                ran += r.call(returns(1))
            except rs.RateLimitedError:
                continue
    assert ran == 2
