"""AsyncRedisRateLimiter and AsyncRedisRetryBudget over redis.asyncio, on a real redis-server.

Issue #15, item 3: the fleet-wide limiter and retry budget in async code, with
no round trip holding the event loop. Every async test runs under asyncio and
anyio's asyncio backend (redis.asyncio runs under asyncio only).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import Background, run_async, until
from .redis_server import RedisServer, free_port

pytest.importorskip("redis", reason="the redis package is not installed")

import redis

from resilience.integrations.redis import (
    AsyncRedisRateLimiter,
    AsyncRedisRetryBudget,
    AsyncRedisStore,
    RedisRateLimiter,
    RedisRetryBudget,
    RedisStore,
    StoreRecovered,
    StoreUnavailable,
)

from .test_redis_async import opened, wait_until_redis_is_busy

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:ratelimit:{llm}"
BACKENDS = ("asyncio", "anyio-asyncio")

backends = pytest.mark.parametrize("backend", BACKENDS)


class TooMany(Exception):
    """A 429 carrying Retry-After."""

    status_code = 429

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("429")
        self.retry_after = retry_after


def alimiter(store: AsyncRedisStore, clock: Any = None, **options: Any) -> AsyncRedisRateLimiter:
    options.setdefault("name", "llm")
    options.setdefault("rate", 5)
    options.setdefault("per", 600.0)  # 2 minutes per unit: nothing comes back during a test
    return AsyncRedisRateLimiter(store=store, clock=clock or FakeClock(), **options)


async def ok() -> str:
    return "ok"


async def take(r: AsyncRedisRateLimiter, n: int) -> int:
    """Ask *n* times through ``acall``; return how many calls ran."""
    ran = 0
    for _ in range(n):
        try:
            await r.acall(ok)
        except rs.RateLimitedError:
            continue
        ran += 1
    return ran


def arrival(client: redis.Redis) -> float:
    """The shared arrival time Redis holds (µs of the server's clock)."""
    value = client.get(KEY)
    assert isinstance(value, bytes)
    return float(value)


@pytest.fixture
def url(redis_server: RedisServer, client: redis.Redis) -> str:
    """The session's server, its database emptied for this test (by the `client` fixture)."""
    return redis_server.url


# --- one limit for the fleet ------------------------------------------------------------------


@backends
def test_two_async_processes_share_one_bucket(url: str, backend: str) -> None:
    """burst=5, max_wait=0: five calls in all across two clients; then refused for 2 minutes."""

    async def main() -> tuple[int, int, float]:
        async with opened(url) as one, opened(url) as two:
            a, b = alimiter(one, max_wait=0), alimiter(two, max_wait=0)
            ran_a, ran_b = await take(a, 3), await take(b, 4)
            with pytest.raises(rs.RateLimitedError) as info:
                await a.acall(ok)
            return ran_a, ran_b, info.value.retry_after or 0.0

    ran_a, ran_b, retry_after = run_async(main, backend)
    assert (ran_a, ran_b) == (3, 2)
    assert retry_after == pytest.approx(120.0, abs=2.0)  # less the time the calls took


def test_a_sync_and_an_async_limiter_of_one_name_share_the_bucket(
    url: str, client: redis.Redis
) -> None:
    """The async limiter uses the sync one's key and scripts: one limit for both."""
    sync = RedisRateLimiter(name="llm", store=RedisStore(client), rate=5, per=600.0, max_wait=0)
    for _ in range(3):
        sync.call(lambda: None)

    async def main() -> int:
        async with opened(url) as store:
            return await take(alimiter(store, max_wait=0), 5)

    assert run_async(main) == 2


@backends
def test_waiters_are_served_in_turn_on_their_own_clock(url: str, backend: str) -> None:
    """Once the bucket is empty each async caller sleeps one interval more than the last."""
    clock = FakeClock()

    async def main() -> None:
        async with opened(url) as one, opened(url) as two:
            # 1000 s per unit: the server's clock, running between the calls, is a rounding error.
            a = alimiter(one, clock, burst=1, rate=10, per=10_000.0)
            b = alimiter(two, clock, burst=1, rate=10, per=10_000.0)
            for r in (a, b, a, b):
                await r.acall(ok)

    with capture_events() as events:
        run_async(main, backend)
    assert clock.sleeps == pytest.approx([1000.0, 2000.0, 3000.0], abs=5.0)
    delays = [e.delay for e in events if isinstance(e, rs.RateLimitWaited)]
    assert delays == pytest.approx([1000.0, 2000.0, 3000.0], abs=5.0)


@backends
def test_a_wait_beyond_max_wait_is_refused_and_reserves_nothing(
    url: str, client: redis.Redis, backend: str
) -> None:
    """max_wait=60 s, a wait of 2 minutes: RateLimitedError at once, the bucket untouched."""

    async def main() -> float:
        async with opened(url) as store:
            r = alimiter(store, burst=1, max_wait=60.0)
            await r.acall(ok)
            before = arrival(client)
            with pytest.raises(rs.RateLimitedError) as info:
                await r.acall(ok)
            assert arrival(client) == before
            return info.value.retry_after or 0.0

    assert run_async(main, backend) == pytest.approx(120.0, abs=2.0)


@backends
def test_a_deadline_refuses_a_wait_that_would_end_after_it(
    url: str, client: redis.Redis, backend: str
) -> None:
    """Inside a Timeout of 1 s, a wait of 2 minutes is refused, and nothing is reserved."""
    clock = FakeClock()

    async def main() -> None:
        async with opened(url) as store:
            r = alimiter(store, clock, burst=1)
            await r.acall(ok)
            before = arrival(client)
            with pytest.raises(rs.RateLimitedError):
                await rs.compose(rs.Timeout(1.0), r).acall(ok)
            assert arrival(client) == before

    run_async(main, backend)


@backends
def test_one_awaited_round_trip_per_call(url: str, client: redis.Redis, backend: str) -> None:
    """Each call is one script on the server; nothing else is sent."""
    from .test_redis_ratelimit import commands

    async def main() -> int:
        async with opened(url) as store:
            r = alimiter(store, rate=1000)
            await r.acall(ok)  # loads the script
            before = commands(client)
            for _ in range(10):
                await r.acall(ok)
            return commands(client) - before

    assert run_async(main, backend) == 10


@backends
def test_async_generators_and_async_with_take_units(url: str, backend: str) -> None:
    """A stream takes its units when it starts, a block on entry; both count in `admitted`."""

    async def main() -> tuple[list[int], float]:
        async with opened(url) as store:
            r = alimiter(store, max_wait=0, burst=2)

            @r
            async def numbers() -> Any:
                yield 1
                yield 2

            items = [item async for item in numbers()]
            async with r:
                pass
            with pytest.raises(rs.RateLimitedError):
                async with r:
                    pass
            return items, r.admitted

    assert run_async(main, backend) == ([1, 2], 2.0)


# --- settled after ---------------------------------------------------------------------------


@backends
def test_a_settle_above_the_estimate_charges_the_fleet(url: str, backend: str) -> None:
    """burst=5: a call estimated at 1 that cost 3 leaves 2 units for another process."""

    async def three() -> int:
        return 3

    async def main() -> tuple[int, float]:
        async with opened(url) as one, opened(url) as two:
            a = alimiter(one, max_wait=0, settle=lambda r: r)
            assert await a.acall(three) == 3
            return await take(alimiter(two, max_wait=0), 5), a.admitted

    assert run_async(main, backend) == (2, 3.0)


@backends
def test_a_settle_below_the_estimate_refunds_the_fleet_when_last(url: str, backend: str) -> None:
    """cost=4 settled at 1, nobody reserved after it: 4 units left for another process."""

    async def one_unit() -> int:
        return 1

    async def main() -> int:
        async with opened(url) as one, opened(url) as two:
            await alimiter(one, max_wait=0, cost=4, settle=lambda r: r).acall(one_unit)
            return await take(alimiter(two, max_wait=0), 5)

    assert run_async(main, backend) == 4


# --- cancellation ------------------------------------------------------------------------------


def cancel_a_waiter(
    url: str, client: redis.Redis, backend: str, when: str
) -> tuple[float, list[object]]:
    """
    Cancel a call that must wait, *when* Redis reserved its slot or once it waits.

    Returns the units it kept (0: none) and the events the limiter emitted for it.
    """
    waiting: list[object] = []

    async def main() -> float:
        async with opened(url) as store:
            r = alimiter(store, rs.engine.SYSTEM_CLOCK, burst=1, hooks=[waiting.append])
            await r.acall(ok)
            before = arrival(client)

            def ready() -> bool:
                return bool(waiting) if when == "waiting" else arrival(client) != before

            async def waiter() -> None:
                await r.acall(ok)
                raise AssertionError("the cancelled call ran")

            if backend == "asyncio":
                task = asyncio.create_task(waiter())
                await until(ready)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                async with anyio.create_task_group() as group:
                    group.start_soon(waiter)
                    await until(ready)
                    group.cancel_scope.cancel()
            # Under a cancel scope the refund runs shielded, in a task of its own.
            await until(lambda: arrival(client) == pytest.approx(before))
            return r.admitted - 1.0

    return run_async(main, backend), waiting


@backends
def test_a_cancelled_waiter_gives_its_units_back_to_the_fleet(
    url: str, client: redis.Redis, backend: str
) -> None:
    """The last reservation, cancelled while it waits: the shared arrival time is as before."""
    kept, events = cancel_a_waiter(url, client, backend, "waiting")
    assert kept == 0.0
    assert [type(e) for e in events] == [rs.RateLimitWaited]


@backends
def test_a_call_cancelled_while_its_reply_arrives_is_cancelled_and_refunded(
    url: str, client: redis.Redis, backend: str
) -> None:
    """Issue #15: redis-py returns the reply despite the cancel; the call never waits nor runs."""
    kept, events = cancel_a_waiter(url, client, backend, "reserved")
    assert kept == 0.0
    assert events == []  # cancelled before the gate, its reservation given back


# --- adapt -------------------------------------------------------------------------------------


@backends
def test_a_429_lowers_the_pace_and_holds_the_fleet_for_its_retry_after(
    url: str, client: redis.Redis, backend: str
) -> None:
    """adapt: the pace drops to 0.8 x rate (RateChanged), and Redis holds every caller 30 s."""

    async def limited() -> None:
        raise TooMany(retry_after=30.0)

    async def main() -> tuple[float, float]:
        async with opened(url) as store:
            r = alimiter(store, rate=100, per=100.0, adapt=rs.transient, max_wait=0)
            with pytest.raises(TooMany):
                await r.acall(limited)
            with pytest.raises(rs.RateLimitedError) as info:
                await r.acall(ok)
            return r.current_rate, info.value.retry_after or 0.0

    with capture_events() as events:
        rate, retry_after = run_async(main, backend)
    assert rate == pytest.approx(80.0)
    # 30 s, plus the quarter interval more a unit costs at 0.8 x rate (1.25 s, not 1 s).
    assert retry_after == pytest.approx(30.25, abs=2.0)
    changed = [e for e in events if isinstance(e, rs.RateChanged)]
    assert [(e.reason, e.rate, e.previous) for e in changed] == [("rate_limit", 80.0, 100.0)]
    assert client.pttl(KEY) > 25_000


@backends
def test_a_429_in_an_async_with_block_holds_the_fleet_on_exit(
    url: str, client: redis.Redis, backend: str
) -> None:
    """adapt: the hold a block's 429 owes is awaited when the block exits."""

    async def main() -> None:
        async with opened(url) as store:
            r = alimiter(store, rate=100, per=100.0, adapt=rs.transient)
            with pytest.raises(TooMany):
                async with r:
                    raise TooMany(retry_after=30.0)

    run_async(main, backend)
    assert client.pttl(KEY) > 25_000


def test_a_sync_limiter_adapts_too(client: redis.Redis) -> None:
    """RedisRateLimiter(adapt=...): lowered by a 429, raised back by successes, up to rate."""
    clock = FakeClock()
    r = RedisRateLimiter(
        name="llm", store=RedisStore(client), rate=5, per=1.0, adapt=rs.transient, clock=clock
    )

    def limited() -> None:
        raise TooMany()

    with pytest.raises(TooMany):
        r.call(limited)
    assert r.current_rate == pytest.approx(4.0)
    assert "adaptive" in r.explain()
    with capture_events() as events:
        for _ in range(60):  # 2 % of rate per window's worth of units: 40 calls to recover
            r.call(lambda: None)
    assert r.current_rate == pytest.approx(5.0)
    assert [e.reason for e in events if isinstance(e, rs.RateChanged)] == ["recovered"]


def test_a_lowered_pace_charges_more_of_the_shared_bucket(client: redis.Redis) -> None:
    """At 0.8 x rate, the next unit takes 1.25 intervals of the fleet's arrival time, not 1."""
    clock = FakeClock()
    r = RedisRateLimiter(  # 100 s per unit: the time the calls take is a rounding error
        name="llm", store=RedisStore(client), rate=10, per=1000.0, burst=1, adapt=rs.transient,
        clock=clock,
    )  # fmt: skip

    def limited() -> None:
        raise TooMany()

    with pytest.raises(TooMany):
        r.call(limited)  # charged 100 s of the bucket at the full rate
    wait = r.admit(None)
    assert isinstance(wait, rs.engine.Wait)
    assert wait.seconds == pytest.approx(125.0, abs=2.0)


# --- Redis unreachable -----------------------------------------------------------------------


@backends
def test_redis_down_falls_back_to_a_local_share_and_recovers(
    own_server: RedisServer, backend: str
) -> None:
    """share=0.4 of burst 5: two calls locally; one StoreUnavailable; StoreRecovered later."""
    clock = FakeClock()
    port = own_server.port

    async def main() -> tuple[int, int, int]:
        async with opened(own_server.url, reconnect=5.0, timeout=0.5) as store:
            r = alimiter(store, clock, max_wait=0, share=0.4)
            first = await take(r, 1)
            await anyio.to_thread.run_sync(own_server.kill)
            down = await take(r, 5)
            await anyio.to_thread.run_sync(own_server.start, port)
            clock.advance(5.0)
            return first, down, await take(r, 5)

    with capture_events() as events:
        assert run_async(main, backend) == (1, 2, 5)
    kinds = [type(e) for e in events if isinstance(e, (StoreUnavailable, StoreRecovered))]
    assert kinds == [StoreUnavailable, StoreRecovered]
    lost = [e for e in events if isinstance(e, StoreUnavailable)]
    assert [(e.name, e.fallback) for e in lost] == [("llm", "local")]


@pytest.mark.parametrize(("fallback", "ran"), [("admit", 5), ("reject", 0)])
def test_redis_unreachable_admit_or_reject(
    redis_server: RedisServer, fallback: str, ran: int
) -> None:
    """Nothing listens: every call is admitted, or refused; no Redis error escapes."""

    async def main() -> int:
        async with opened(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5) as store:
            return await take(alimiter(store, fallback=fallback, hooks=[lambda e: None]), 5)

    assert run_async(main) == ran


# --- the event loop keeps running ------------------------------------------------------------


async def ticking_while(url: str, work: Any) -> tuple[Any, int]:
    """Run *work()* while DEBUG SLEEP stalls Redis; return its result and the ticks meanwhile."""
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.002)
            ticks += 1

    sleeper = redis.Redis.from_url(url, socket_timeout=5.0)
    task = asyncio.create_task(ticker())
    slow = Background(lambda: sleeper.execute_command("DEBUG", "SLEEP", "0.5"))  # type: ignore[no-untyped-call]
    try:
        await asyncio.to_thread(wait_until_redis_is_busy, url, slow)
        before = ticks
        result = await work()  # its round trip waits behind DEBUG SLEEP
        during = ticks - before
    finally:
        done = True
        await task
        await asyncio.to_thread(slow.result)
        sleeper.close()
    return result, during


def test_a_slow_redis_never_holds_the_loop_for_the_limiter(url: str) -> None:
    """While DEBUG SLEEP stalls Redis, a ticker keeps ticking during an acquisition (issue #15)."""

    async def main() -> tuple[Any, int]:
        async with opened(url) as store:
            r = alimiter(store, rate=1000)
            return await ticking_while(url, lambda: r.acall(ok))

    result, during = run_async(main)
    assert result == "ok"
    assert during >= 5, f"the loop ticked {during} times while Redis was slow"


def test_a_slow_redis_never_holds_the_loop_for_the_budget(url: str) -> None:
    """While DEBUG SLEEP stalls Redis, a ticker keeps ticking during aspend (issue #15)."""

    async def main() -> tuple[Any, int]:
        async with opened(url) as store:
            budget = AsyncRedisRetryBudget(name="api", store=store)
            return await ticking_while(url, budget.aspend)

    allowed, during = run_async(main)
    assert allowed is True
    assert during >= 5, f"the loop ticked {during} times while Redis was slow"


# --- the budget ---------------------------------------------------------------------------------


@backends
def test_two_async_processes_share_one_budget(url: str, backend: str) -> None:
    """minimum=3, ratio=0: three retries for the fleet, whichever client asks."""

    async def main() -> list[bool]:
        async with opened(url) as one, opened(url) as two:
            a = AsyncRedisRetryBudget(name="api", store=one, ratio=0.0, minimum=3, per=60.0)
            b = AsyncRedisRetryBudget(name="api", store=two, ratio=0.0, minimum=3, per=60.0)
            return [await a.aspend(), await b.aspend(), await b.aspend(), await a.aspend()]

    assert run_async(main, backend) == [True, True, True, False]


def test_a_sync_and_an_async_budget_of_one_name_share_the_window(
    url: str, client: redis.Redis
) -> None:
    """The async budget uses the sync one's key and script: one window for both."""
    sync = RedisRetryBudget(name="api", store=RedisStore(client), ratio=0.0, minimum=2, per=60.0)
    assert sync.spend()

    async def main() -> list[bool]:
        async with opened(url) as store:
            budget = AsyncRedisRetryBudget(name="api", store=store, ratio=0.0, minimum=2, per=60.0)
            return [await budget.aspend(), await budget.aspend()]

    assert run_async(main) == [True, False]


@backends
def test_an_async_retry_awaits_the_budget_and_gives_up_when_spent(url: str, backend: str) -> None:
    """minimum=1: the first call retries once, the second gives up (reason "budget")."""
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    async def main() -> None:
        async with opened(url) as store:
            budget = AsyncRedisRetryBudget(name="api", store=store, ratio=0.0, minimum=1, per=60.0)
            retry = rs.Retry(on=ConnectionError, attempts=3, budget=budget, clock=FakeClock())
            with pytest.raises(ConnectionError):
                await retry.acall(flaky)
            assert calls == 2  # one retry allowed, the next refused
            with pytest.raises(ConnectionError):
                await retry.acall(flaky)
            assert calls == 3

    with capture_events() as events:
        run_async(main, backend)
    reasons = [e.reason for e in events if isinstance(e, rs.RetriesExhausted)]
    assert reasons == ["budget", "budget"]


@backends
def test_async_with_attempt_awaits_the_budget(url: str, backend: str) -> None:
    """`async for attempt ... async with attempt:` asks the budget with an awaited round trip."""

    async def main() -> int:
        tries = 0
        async with opened(url) as store:
            budget = AsyncRedisRetryBudget(name="api", store=store, ratio=0.0, minimum=1, per=60.0)
            retry = rs.Retry(on=ConnectionError, attempts=5, budget=budget, clock=FakeClock())
            with pytest.raises(ConnectionError):
                async for attempt in retry.attempts():
                    async with attempt:
                        tries += 1
                        raise ConnectionError("down")
        return tries

    assert run_async(main, backend) == 2


def test_redis_down_the_async_budget_falls_back_and_recovers(own_server: RedisServer) -> None:
    """Redis down: StoreUnavailable, the local budget decides; back up: StoreRecovered."""
    clock = FakeClock()
    port = own_server.port

    async def main() -> list[bool]:
        async with opened(own_server.url, reconnect=5.0, timeout=0.5) as store:
            budget = AsyncRedisRetryBudget(
                name="api", store=store, ratio=0.0, minimum=1, per=60.0, clock=clock
            )
            await asyncio.to_thread(own_server.kill)
            down = [await budget.aspend(), await budget.aspend()]
            await asyncio.to_thread(own_server.start, port)
            clock.advance(5.0)
            return [*down, await budget.aspend()]

    with capture_events() as events:
        assert run_async(main) == [True, False, True]
    kinds = [type(e) for e in events if isinstance(e, (StoreUnavailable, StoreRecovered))]
    assert kinds == [StoreUnavailable, StoreRecovered]


# --- misuse -------------------------------------------------------------------------------------


def test_sync_use_is_a_type_error_naming_the_sync_twin(client: redis.Redis) -> None:
    """A sync function, `with`, spend(): TypeErrors naming RedisRateLimiter, RedisRetryBudget."""
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0")
    r = alimiter(store)
    with pytest.raises(TypeError, match="use RedisRateLimiter with a RedisStore"):
        r(lambda: None)
    with pytest.raises(TypeError, match="use RedisRateLimiter"), r:
        pass
    budget = AsyncRedisRetryBudget(name="api", store=store)
    with pytest.raises(TypeError, match="RedisRetryBudget with a RedisStore"):
        budget.spend()
    retry = rs.Retry(on=ConnectionError, budget=budget)
    with pytest.raises(TypeError, match="aspend"):
        retry(lambda: None)


def test_the_stores_are_not_interchangeable(client: redis.Redis) -> None:
    """Each twin takes its own store, and says which class takes the other."""
    with pytest.raises(TypeError, match="use RedisRateLimiter"):
        AsyncRedisRateLimiter(name="llm", store=RedisStore(client), rate=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use AsyncRedisRateLimiter"):
        RedisRateLimiter(name="llm", store=AsyncRedisStore.from_url("redis://x"), rate=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use AsyncRedisRetryBudget"):
        RedisRetryBudget(name="api", store=AsyncRedisStore.from_url("redis://x"))  # type: ignore[arg-type]


def test_under_trio_a_round_trip_says_it_needs_asyncio() -> None:
    """redis.asyncio needs asyncio: under trio, the limiter and the budget raise RuntimeError."""
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0")  # never reached

    async def limit() -> None:
        await alimiter(store).acall(ok)

    async def spend() -> None:
        await AsyncRedisRetryBudget(name="api", store=store).aspend()

    for main in (limit, spend):
        with pytest.raises(RuntimeError, match=r"redis\.asyncio, which runs under asyncio only"):
            run_async(main, "trio")


def test_settings_repr_and_explain(client: redis.Redis) -> None:
    """Its settings, a repr without the client, explain() saying the round trip is awaited."""
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0")
    r = alimiter(store, rate=600, per=60.0)
    assert repr(r) == (
        "AsyncRedisRateLimiter(name='llm', rate=600, per=60, burst=600, fallback='local')"
    )
    assert r.store is store
    assert "awaited, redis.asyncio" in r.explain()
    budget = AsyncRedisRetryBudget(name="api", store=store)
    assert repr(budget) == "AsyncRedisRetryBudget(name='api', ratio=0.1, minimum=10, per=1.0)"


# --- admitted ------------------------------------------------------------------------------------


def test_metrics_watch_a_fleet_limiter_sync_and_async(url: str, client: redis.Redis) -> None:
    """`admitted` makes both Redis limiters watchable: a snapshot sums this process's units."""
    metrics = rs.MetricsCollector(name="api")
    rs.compose(metrics).call(int)
    sync = metrics.watch(
        RedisRateLimiter(name="llm", store=RedisStore(client), rate=100, clock=FakeClock())
    )
    sync.call(lambda: None)

    async def main() -> None:
        async with opened(url) as store:
            limiter = metrics.watch(alimiter(store, rate=100, cost=2))
            await limiter.acall(ok)

    run_async(main)
    assert metrics.snapshot()["llm"].rate_admitted == 3.0


def test_refused_calls_count_nothing_and_the_admit_fallback_counts_its_estimate(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    """A refusal leaves `admitted` as it was; calls the "admit" fallback let through count."""
    r = RedisRateLimiter(name="llm", store=RedisStore(client), rate=1, max_wait=0)
    r.call(lambda: None)
    with pytest.raises(rs.RateLimitedError):
        r.call(lambda: None)
    assert r.admitted == 1.0
    down = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    admitting = RedisRateLimiter(name="llm", store=down, rate=3, cost=3, fallback="admit")
    with capture_events():
        admitting.call(lambda: None)
    assert admitting.admitted == 3.0
