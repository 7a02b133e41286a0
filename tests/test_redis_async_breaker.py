"""A CircuitBreaker over AsyncRedisStore (redis.asyncio) against a real redis-server (issue #15)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import run_async, until
from .redis_server import RedisServer, free_port, make_client, put_to_sleep

pytest.importorskip("redis", reason="the redis package is not installed")

import redis
import redis.asyncio

from resilience.integrations.redis import (
    AsyncRedisCircuitStore,
    AsyncRedisStore,
    RedisStore,
    StoreRecovered,
    StoreRolledBack,
    StoreUnavailable,
)

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:circuit:{api}"
LEASES = "resilience:circuit:{api}:leases"

ASYNCIO_WORLDS = ("asyncio", "anyio-asyncio")
"""Where redis.asyncio runs: asyncio, natively and under anyio (trio: see the last test)."""


class Boom(Exception):
    """A failure the breakers count."""


class Other(Exception):
    """An error the breakers ignore."""


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom


@pytest.fixture(params=ASYNCIO_WORLDS)
def world(request: pytest.FixtureRequest) -> str:
    """The async world a test runs in."""
    return str(request.param)


@pytest.fixture
def url(redis_server: RedisServer, client: redis.Redis) -> str:
    """The session's server, its database emptied for this test (by the `client` fixture)."""
    return redis_server.url


@contextlib.asynccontextmanager
async def opened(address: str, **options: Any) -> AsyncIterator[AsyncRedisStore]:
    """An async store for *address* ("a process"), its client closed on the way out."""
    options.setdefault("timeout", 2.0)
    store = AsyncRedisStore.from_url(address, **options)
    try:
        yield store
    finally:
        await store.client.aclose()


def breaker(
    store: AsyncRedisStore | RedisStore, clock: FakeClock | None = None, **options: Any
) -> rs.CircuitBreaker:
    options.setdefault("failure_threshold", 3)
    return rs.CircuitBreaker(
        on=Boom, name="api", store=store, clock=clock or FakeClock(), **options
    )


async def fail(b: rs.CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await b.acall(boom)


def state(b: rs.CircuitBreaker) -> rs.CircuitState:
    """The breaker's state, as its store last read it (a function: no narrowing)."""
    return b.state


def round_trips(client: redis.Redis) -> int:
    """Scripts the server has run so far (INFO commandstats)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


def named(events: list[rs.Event], *kinds: type[rs.Event]) -> list[str]:
    return [type(e).__name__ for e in events if not kinds or isinstance(e, kinds)]


# --- sharing: one circuit for every process, sync or async ------------------------------


def test_failures_in_two_processes_open_one_circuit(
    url: str, client: redis.Redis, world: str
) -> None:
    """Failures counted by two async stores (two clients) open the shared circuit (issue #15)."""

    async def main() -> None:
        async with opened(url, refresh=0) as one, opened(url, refresh=0) as two:
            a, b = breaker(one), breaker(two)
            await fail(a, 2)
            await fail(b)
            with pytest.raises(rs.CircuitOpenError):
                await a.acall(ok)

    run_async(main, world)
    assert client.hget(KEY, "s") == b"o"
    sync = breaker(RedisStore(client))
    with pytest.raises(rs.CircuitOpenError):
        sync.call(lambda: "ok")  # a sync breaker of the same name: the same circuit


def test_a_sync_breakers_failures_count_for_the_async_one(
    url: str, client: redis.Redis, world: str
) -> None:
    """A sync process and an async one share the count: the async failure opens it."""
    sync = breaker(RedisStore(client))
    for _ in range(2):
        with pytest.raises(Boom):
            sync.call(lambda: (_ for _ in ()).throw(Boom()))

    async def main() -> rs.CircuitState:
        async with opened(url) as store:
            b = breaker(store)
            await fail(b)
            return state(b)

    assert run_async(main, world) is rs.CircuitState.OPEN


def test_the_closed_success_path_makes_no_round_trip(
    url: str, client: redis.Redis, world: str
) -> None:
    """Fresh cache, closed, nothing pending: a success reads and writes nothing."""

    async def main() -> None:
        async with opened(url) as store:
            b = breaker(store)
            await b.acall(ok)  # the first call reads the circuit
            before = round_trips(client)
            for _ in range(20):
                assert await b.acall(ok) == "ok"
            assert round_trips(client) == before

    run_async(main, world)


def test_one_opening_one_event_for_the_fleet(url: str, world: str) -> None:
    """The opening is announced once, by the process whose failure made it."""
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def main() -> None:
        async with opened(url) as one, opened(url) as two:
            a = breaker(one, hooks=[lambda e: seen["a"].append(type(e).__name__)])
            b = breaker(two, hooks=[lambda e: seen["b"].append(type(e).__name__)])
            await fail(a, 2)
            await fail(b)
            await fail(a)  # a late failure of a closed period that has ended: changes nothing

    rs.set_hooks(())
    run_async(main, world)
    assert seen == {"a": [], "b": ["CircuitOpened"]}


# --- half-open: one probe for the fleet --------------------------------------------------


def test_a_half_open_probe_is_claimed_once_fleet_wide(url: str, world: str) -> None:
    """While one process's probe runs, the other's call is rejected; its success closes it."""

    async def main() -> list[str]:
        async with opened(url, refresh=0) as one, opened(url, refresh=0) as two:
            a, b = breaker(one, reset_timeout=0.0), breaker(two, reset_timeout=0.0)
            await a.aopen()
            started, release = asyncio.Event(), asyncio.Event()

            async def probe() -> str:
                started.set()
                await release.wait()
                return "probed"

            with capture_events() as events:
                task = asyncio.ensure_future(a.acall(probe))
                await started.wait()
                with pytest.raises(rs.CircuitOpenError) as refused:
                    await b.acall(ok)
                assert refused.value.retry_after is None
                release.set()
                assert await task == "probed"
                assert await b.acall(ok) == "ok"
            return named(events, rs.CircuitHalfOpened, rs.CircuitClosed)

    assert run_async(main, world) == ["CircuitHalfOpened", "CircuitClosed"]


def test_twenty_tasks_in_two_processes_get_exactly_the_probes(url: str, world: str) -> None:
    """10 tasks per store ask for a probe at once: exactly half_open_max_calls run."""

    async def main() -> tuple[int, int]:
        async with opened(url, refresh=0) as one, opened(url, refresh=0) as two:
            stores = (one, two)
            breakers = [
                breaker(
                    stores[n % 2], reset_timeout=0.0, half_open_max_calls=2, success_threshold=2
                )
                for n in range(20)
            ]
            await breakers[0].aopen()
            release = asyncio.Event()

            async def probe() -> str:
                await release.wait()
                return "probed"

            async def attempt(b: rs.CircuitBreaker) -> str:
                try:
                    return await b.acall(probe)
                except rs.CircuitOpenError:
                    return "rejected"

            tasks = [asyncio.ensure_future(attempt(b)) for b in breakers]
            await until(lambda: sum(t.done() for t in tasks) >= 18)  # the rejected ones
            release.set()
            outcomes = await asyncio.gather(*tasks)
        return outcomes.count("probed"), outcomes.count("rejected")

    assert run_async(main, world) == (2, 18)


def test_a_failed_probe_opens_it_again(url: str, client: redis.Redis, world: str) -> None:
    """One failed probe reopens the shared circuit."""

    async def main() -> None:
        async with opened(url, refresh=0) as store:
            b = breaker(store, reset_timeout=0.0)
            await b.aopen()
            client.hset(KEY, "u", "0")
            await fail(b)
            assert client.hget(KEY, "s") == b"o"
            assert client.hget(KEY, "n") == b"2"

    run_async(main, world)


def test_a_cancelled_probe_gives_its_lease_back_and_is_not_counted(
    url: str, client: redis.Redis, world: str
) -> None:
    """Cancelling the probe returns its place (in a task of its own) and counts nothing."""

    async def main() -> str:
        async with opened(url, refresh=0) as store:
            b = breaker(store, reset_timeout=0.0)
            await b.aopen()
            started = asyncio.Event()

            async def hang() -> None:
                started.set()
                await asyncio.Event().wait()

            task = asyncio.ensure_future(b.acall(hang))
            await started.wait()
            assert client.zcard(LEASES) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            circuit: Any = b._store
            assert isinstance(circuit, AsyncRedisCircuitStore)
            await asyncio.gather(*circuit._tasks)  # the lease's return, awaited here
            assert client.zcard(LEASES) == 0
            assert client.hget(KEY, "s") == b"h"  # neither a failure nor a success
            return await b.acall(ok)  # the place is free: this probe closes it

    assert run_async(main, world) == "ok"
    assert client.hget(KEY, "s") == b"c"


def test_an_anyio_cancel_scope_around_a_probe_returns_its_lease(
    url: str, client: redis.Redis
) -> None:
    """anyio cancels level-triggered (every await in the scope): the lease still goes back."""

    async def main() -> None:
        async with opened(url, refresh=0) as store:
            b = breaker(store, reset_timeout=0.0)
            await b.aopen()
            started = anyio.Event()

            async def hang() -> None:
                started.set()
                await anyio.sleep_forever()

            async def cancel(scope: anyio.CancelScope) -> None:
                await started.wait()
                scope.cancel()

            async with anyio.create_task_group() as tasks:
                with anyio.CancelScope() as scope:
                    tasks.start_soon(cancel, scope)
                    await b.acall(hang)
            assert scope.cancelled_caught
            circuit: Any = b._store
            await asyncio.gather(*circuit._tasks)
            assert client.zcard(LEASES) == 0
            assert client.hget(KEY, "s") == b"h"

    run_async(main, "anyio-asyncio")


def test_a_probe_cancelled_while_its_reply_arrives_never_runs_and_gives_its_lease_back(
    url: str, client: redis.Redis, world: str
) -> None:
    """Issue #15: cancelled once Redis granted its lease (redis-py may return the reply all
    the same): the probe never runs, and its lease goes back."""

    async def main() -> None:
        async with opened(url, refresh=0) as store:
            b = breaker(store, reset_timeout=0.0)
            await b.aopen()

            async def probe() -> None:
                raise AssertionError("the cancelled probe ran")

            task = asyncio.ensure_future(b.acall(probe))
            await until(lambda: client.zcard(LEASES) == 1)  # Redis granted the lease
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            circuit: Any = b._store
            await asyncio.gather(*circuit._tasks)
            assert client.zcard(LEASES) == 0
            assert client.hget(KEY, "s") == b"h"  # neither run nor counted

    run_async(main, world)


def test_a_cancelled_closed_call_is_never_counted(
    url: str, client: redis.Redis, world: str
) -> None:
    """A closed-state call cancelled mid-flight counts no failure."""

    async def main() -> None:
        async with opened(url) as store:
            b = breaker(store, failure_threshold=1)
            await b.acall(ok)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await b.acall(asyncio.sleep, 60)
            assert await b.acall(ok) == "ok"

    run_async(main, world)
    assert client.hget(KEY, "f") == b"0"


# --- the other async forms ------------------------------------------------------------------


def test_async_with_and_async_generators_record_through_redis(
    url: str, client: redis.Redis, world: str
) -> None:
    """`async with` blocks and async streams are admitted and counted in Redis."""

    async def main() -> list[int]:
        async with opened(url) as store:
            b = breaker(store)

            @b
            async def numbers() -> AsyncIterator[int]:
                yield 1
                yield 2

            @b
            async def broken() -> AsyncIterator[int]:
                yield 1
                raise Boom

            got = [n async for n in numbers()]
            with pytest.raises(Boom):
                async with b:
                    raise Boom
            with pytest.raises(Boom):
                async for _ in broken():
                    pass
            assert client.hget(KEY, "f") == b"2"
            with pytest.raises(Boom):
                async with b:
                    raise Boom
            with pytest.raises(rs.CircuitOpenError):
                async with b:
                    pass
            return got

    assert run_async(main, world) == [1, 2]


def test_a_result_the_classifier_refuses_is_a_shared_failure(
    url: str, client: redis.Redis, world: str
) -> None:
    """A classifier that judges results counts a refused result in Redis."""

    async def main() -> None:
        async with opened(url) as store:
            b = rs.CircuitBreaker(
                on=rs.Rule(when=lambda r: r == "bad"),
                name="api",
                store=store,
                failure_threshold=1,
                clock=FakeClock(),
            )
            assert await b.acall(lambda: ok()) == "ok"

            async def bad() -> str:
                return "bad"

            assert await b.acall(bad) == "bad"
            assert state(b) is rs.CircuitState.OPEN

    run_async(main, world)
    assert client.hget(KEY, "s") == b"o"


def test_ignored_errors_neither_count_nor_reset(url: str, client: redis.Redis, world: str) -> None:
    """An error the classifier does not trip on changes nothing in Redis."""

    async def main() -> None:
        async with opened(url) as store:
            b = breaker(store)
            await fail(b)

            async def other() -> None:
                raise Other

            with pytest.raises(Other):
                await b.acall(other)
            await fail(b, 2)
            assert state(b) is rs.CircuitState.OPEN

    run_async(main, world)


def test_manual_control_is_awaited_and_shared(url: str, client: redis.Redis, world: str) -> None:
    """aopen, aisolate, aclose and areset move the circuit in Redis; events as the sync ones."""

    async def main() -> list[str]:
        async with opened(url) as store:
            b = breaker(store)
            with capture_events() as events:
                await b.aopen()
                assert client.hget(KEY, "s") == b"o"
                await b.aisolate()
                assert client.hget(KEY, "s") == b"i"
                await b.aclose()
                await b.aopen()
                await b.areset()
            assert state(b) is rs.CircuitState.CLOSED
            return named(events)

    assert run_async(main, world) == [
        "CircuitOpened",
        "CircuitOpened",
        "CircuitClosed",
        "CircuitOpened",
        "CircuitClosed",
    ]


def test_the_async_manual_controls_serve_a_sync_store_too() -> None:
    """`await breaker.aopen()` works whatever the store: with a sync one it is `open()`."""
    b = rs.CircuitBreaker(on=Boom, clock=FakeClock())

    async def main() -> None:
        await b.aopen()
        assert state(b) is rs.CircuitState.OPEN
        await b.aisolate()
        assert state(b) is rs.CircuitState.ISOLATED
        await b.aclose()
        await b.aopen()
        await b.areset()

    run_async(main)
    assert state(b) is rs.CircuitState.CLOSED


# --- rollback --------------------------------------------------------------------------------


def test_a_rolled_back_circuit_is_adopted_with_one_event(
    url: str, client: redis.Redis, world: str
) -> None:
    """#18.1 in async: Redis back at an older period is adopted, said once, and counts again."""

    async def main() -> None:
        async with opened(url) as store:
            b = breaker(store)
            await b.aopen()
            await b.aclose()  # the cached period id is now a server time
            client.hset(KEY, "g", 1)  # an older snapshot of the circuit
            for _ in range(30):
                with contextlib.suppress(Boom, rs.CircuitOpenError):
                    await b.acall(boom)
            assert state(b) is rs.CircuitState.OPEN

    with capture_events() as events:
        run_async(main, world)
    assert named(events, StoreRolledBack) == ["StoreRolledBack"]
    assert named(events, rs.CircuitOpened).count("CircuitOpened") == 2  # aopen, then failures


def test_an_outcome_redis_runs_after_the_client_gave_up_changes_nothing(
    own_server: RedisServer, world: str
) -> None:
    """#18.2 in async: a failure whose round trip timed out (Redis asleep) is not applied
    when Redis wakes: no opening that nobody announced."""
    admin = make_client(own_server.url, socket_timeout=5.0)

    async def main() -> None:
        async with opened(own_server.url, timeout=1.0) as store:
            b = breaker(store, failure_threshold=2)
            await fail(b)  # counted in Redis; the process learns the server's time
            sleeper = await asyncio.to_thread(put_to_sleep, own_server.url, 3.0)
            await fail(b)  # times out on the client: Redis is asleep
            await asyncio.to_thread(admin.ping)  # awake, every request queued meanwhile run
            sleeper.close()

    with capture_events() as events:
        run_async(main, world)
    assert "StoreUnavailable" in named(events)
    assert "CircuitOpened" not in named(events)
    shared = admin.hgetall(KEY)
    admin.close()
    assert (shared[b"s"], shared[b"f"]) == (b"c", b"1")


def test_an_opening_whose_reply_was_lost_is_announced_once_by_its_opener(
    own_server: RedisServer, world: str
) -> None:
    """#18.2 in async: Redis ran the opening failure after the client gave up waiting: the
    opener announces it with its next reply, once; another store never does."""
    clock = FakeClock()
    admin = make_client(own_server.url, socket_timeout=5.0)
    other = breaker(RedisStore(admin), clock)

    async def main() -> None:
        async with opened(own_server.url, timeout=1.0) as store:
            a = breaker(store, clock, failure_threshold=2)
            circuit: Any = a._store
            circuit._late_after = 0  # no deadline: Redis runs it whenever it wakes
            await fail(a)
            sleeper = await asyncio.to_thread(put_to_sleep, own_server.url, 3.0)
            await fail(a)  # times out on the client; Redis runs it when it wakes: it opens
            await asyncio.to_thread(admin.ping)
            sleeper.close()
            assert admin.hget(KEY, "s") == b"o"
            for _ in range(2):  # the other store sees the opening and announces nothing
                with pytest.raises(rs.CircuitOpenError):
                    other.call(lambda: "ok")
            clock.advance(store.reconnect)  # the opener tries Redis again
            for _ in range(2):
                with pytest.raises(rs.CircuitOpenError):
                    await a.acall(ok)

    with capture_events() as events:
        run_async(main, world)
    openings = [e for e in events if isinstance(e, rs.CircuitOpened)]
    assert len(openings) == int(admin.hget(KEY, "n") or 0) == 1
    admin.close()
    assert (openings[0].name, openings[0].reason) == ("api", "failures")


# --- Redis unreachable ------------------------------------------------------------------------


def test_an_unreachable_redis_falls_back_to_a_local_circuit(
    redis_server: RedisServer, world: str
) -> None:
    """No Redis (a wrong port): calls run on a local circuit; StoreUnavailable once."""
    address = f"redis://127.0.0.1:{free_port()}/0"

    async def main() -> None:
        async with opened(address) as store:
            b = breaker(store)
            assert await b.acall(ok) == "ok"
            await fail(b, 3)
            with pytest.raises(rs.CircuitOpenError):
                await b.acall(ok)
            assert state(b) is rs.CircuitState.OPEN

    with capture_events() as events:
        run_async(main, world)
    (lost,) = (e for e in events if isinstance(e, StoreUnavailable))
    assert (lost.name, lost.fallback) == ("api", "local")
    assert isinstance(lost.error, redis.exceptions.ConnectionError)
    assert named(events)[-2:] == ["CircuitOpened", "CallRejected"]


@pytest.mark.parametrize("fallback", ["admit", "reject"])
def test_fallback_admit_or_reject(own_server: RedisServer, fallback: str, world: str) -> None:
    """fallback='admit' runs every call uncounted; 'reject' refuses every call."""

    async def main() -> None:
        async with opened(own_server.url, refresh=0, fallback=fallback) as store:
            b = breaker(store)
            assert await b.acall(ok) == "ok"
            await asyncio.to_thread(own_server.kill)
            if fallback == "admit":
                await fail(b, 10)
                assert await b.acall(ok) == "ok"
                assert state(b) is rs.CircuitState.CLOSED
            else:
                with pytest.raises(rs.CircuitOpenError) as info:
                    await b.acall(ok)
                assert info.value.retry_after is None
                assert state(b) is rs.CircuitState.OPEN

    with capture_events() as events:
        run_async(main, world)
    assert named(events, StoreUnavailable) == ["StoreUnavailable"]


def test_redis_back_up_is_used_again_with_store_recovered(
    own_server: RedisServer, world: str
) -> None:
    """Killed mid-run: local fallback; restarted: after *reconnect*, Redis counts again."""
    clock = FakeClock()
    port = own_server.port

    async def main() -> None:
        async with opened(own_server.url, refresh=0, reconnect=5.0) as store:
            b = breaker(store, clock)
            assert await b.acall(ok) == "ok"
            await asyncio.to_thread(own_server.kill)
            await fail(b)  # counted locally
            await asyncio.to_thread(own_server.start, port)
            assert await b.acall(ok) == "ok"  # before reconnect: still local, no round trip
            clock.advance(5.0)
            await fail(b)  # the next attempt reaches Redis and is counted there

    with capture_events() as events:
        run_async(main, world)
    assert named(events, StoreUnavailable, StoreRecovered) == ["StoreUnavailable", "StoreRecovered"]
    (recovered,) = (e for e in events if isinstance(e, StoreRecovered))
    assert recovered.downtime >= 5.0
    check = redis.Redis.from_url(own_server.url)
    try:
        assert check.hget(KEY, "f") == b"1"
    finally:
        check.close()


# --- the event loop keeps running -------------------------------------------------------------


@pytest.fixture
def asleep(url: str) -> Iterator[Any]:
    """Put the server to sleep for 2 s (DEBUG SLEEP) when called; wake it before the next test."""
    sleepers: list[Any] = []

    def sleep() -> None:
        sleepers.append(put_to_sleep(url, 2.0))

    yield sleep
    for sleeper in sleepers:
        sleeper.settimeout(10.0)
        sleeper.recv(16)  # +OK: the server is awake again
        sleeper.close()


def test_a_slow_redis_never_holds_the_event_loop(url: str, asleep: Any, world: str) -> None:
    """While DEBUG SLEEP stalls Redis, a ticker keeps ticking during the breaker's round trip."""

    async def main() -> tuple[str, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.002)
                ticks += 1

        async with opened(url, timeout=10.0) as store:
            b = breaker(store)  # its cache is empty: its first call reads Redis
            task = asyncio.ensure_future(ticker())
            await asyncio.to_thread(asleep)
            before = ticks
            result = await b.acall(ok)  # its read waits behind DEBUG SLEEP
            during = ticks - before
            done = True
            await task
        return result, during

    result, during = run_async(main, world)
    assert result == "ok"
    assert during >= 5, f"the loop ticked {during} times while Redis was slow"


def test_a_failure_recorded_while_redis_is_slow_never_holds_the_event_loop(
    url: str, client: redis.Redis, asleep: Any, world: str
) -> None:
    """The round trip after the call (a failure counted) is awaited too: the ticker ticks."""

    async def main() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.002)
                ticks += 1

        async with opened(url, timeout=10.0) as store:
            b = breaker(store)
            assert await b.acall(ok) == "ok"  # the cache is fresh: the failure's call needs no read
            task = asyncio.ensure_future(ticker())
            await asyncio.to_thread(asleep)
            before = ticks
            await fail(b)  # its record waits behind DEBUG SLEEP
            during = ticks - before
            done = True
            await task
        return during

    during = run_async(main, world)
    assert during >= 5, f"the loop ticked {during} times while Redis was slow"
    assert client.hget(KEY, "f") == b"1"


# --- misuse -------------------------------------------------------------------------------------


@pytest.fixture
def async_breaker(redis_server: RedisServer) -> rs.CircuitBreaker:
    """A breaker over an AsyncRedisStore (its client connects on first use)."""
    return breaker(AsyncRedisStore(redis.asyncio.Redis.from_url(redis_server.url)))


def test_sync_functions_and_generators_are_a_type_error_naming_redis_store(
    async_breaker: rs.CircuitBreaker,
) -> None:
    """Decorating a sync function or generator points to RedisStore."""

    def numbers() -> Iterator[int]:
        yield 1

    for fn in (lambda: None, numbers):
        with pytest.raises(TypeError, match=r"store=RedisStore\(a redis\.Redis client\)"):
            async_breaker(fn)


def test_call_with_and_manual_controls_are_a_type_error(async_breaker: rs.CircuitBreaker) -> None:
    """`call`, `with` and the sync manual controls say what to use instead."""
    with pytest.raises(TypeError, match="use a breaker with store=RedisStore"):
        async_breaker.call(lambda: None)
    with pytest.raises(TypeError, match="use `async with`"), async_breaker:
        pass
    with pytest.raises(TypeError, match=r"await breaker\.aopen\(\)"):
        async_breaker.open()
    with pytest.raises(TypeError, match=r"await breaker\.areset\(\)"):
        async_breaker.reset()


def test_the_store_is_an_async_circuit_store_and_not_a_sync_one(
    async_breaker: rs.CircuitBreaker,
) -> None:
    """The breaker's store answers the async protocol only; its state is read without I/O."""
    store: object = async_breaker._store
    assert isinstance(store, rs.AsyncCircuitStore)
    assert not isinstance(store, rs.CircuitStore)
    assert async_breaker.awaits
    assert state(async_breaker) is rs.CircuitState.CLOSED  # nothing read yet: no round trip
    assert "AsyncRedisCircuitStore 'resilience:circuit:{api}'" in repr(store)


def test_a_store_that_is_neither_kind_is_refused() -> None:
    """A factory returning something else is a TypeError naming both protocols."""
    with pytest.raises(TypeError, match="a CircuitStore or an AsyncCircuitStore"):
        rs.CircuitBreaker(on=Boom, store=lambda b: object())  # type: ignore[arg-type, return-value]


def test_under_trio_a_round_trip_says_it_needs_asyncio() -> None:
    """redis.asyncio needs asyncio: under trio the first round trip is a clear RuntimeError."""
    b = breaker(AsyncRedisStore.from_url("redis://127.0.0.1:1/0"))  # never reached

    async def main() -> None:
        await b.acall(ok)

    with pytest.raises(RuntimeError, match=r"redis\.asyncio, which runs under asyncio only"):
        run_async(main, "trio")
