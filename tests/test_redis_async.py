"""AsyncRetryAfterPause over redis.asyncio against a real redis-server (issue #15)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import Background, run_async, until
from .redis_server import RedisServer

pytest.importorskip("redis", reason="the redis package is not installed")

import redis
import redis.asyncio

from resilience.integrations.redis import (
    AsyncRedisStore,
    AsyncRetryAfterPause,
    CallDelayed,
    PausedError,
    PauseStarted,
    RedisStore,
    RetryAfterPause,
    StoreRecovered,
    StoreUnavailable,
)
from tests.docs_blocks import run_block

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:pause:{api}"


class RateLimited(Exception):
    """A 429 carrying Retry-After."""

    status_code = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


def apause(
    store: AsyncRedisStore, clock: FakeClock | None = None, **options: Any
) -> AsyncRetryAfterPause:
    return AsyncRetryAfterPause(
        on=rs.transient, name="api", store=store, clock=clock or FakeClock(), **options
    )


async def limited(after: float = 2.0) -> None:
    raise RateLimited(after)


async def ok() -> str:
    return "ok"


@pytest.fixture
def url(redis_server: RedisServer, client: redis.Redis) -> str:
    """The session's server, its database emptied for this test (by the `client` fixture)."""
    return redis_server.url


@contextlib.asynccontextmanager
async def opened(address: str, **options: Any) -> AsyncIterator[AsyncRedisStore]:
    """An async store for *address*, its client closed on the way out (one per event loop)."""
    options.setdefault("timeout", 2.0)
    store = AsyncRedisStore.from_url(address, **options)
    try:
        yield store
    finally:
        await store.client.aclose()


def test_a_429_in_async_code_pauses_a_sync_caller_of_the_same_name(
    url: str, client: redis.Redis
) -> None:
    """The async pause writes the key the sync one reads: one pause for both (issue #15)."""

    async def main() -> None:
        async with opened(url) as store:
            with pytest.raises(RateLimited):
                await apause(store).acall(limited, 2.0)

    with capture_events() as events:
        run_async(main)
        assert 1_000 < client.pttl(KEY) <= 2_000
        clock = FakeClock()
        other = RetryAfterPause(on=rs.transient, name="api", store=RedisStore(client), clock=clock)
        assert other.call(lambda: "ok") == "ok"
    (waited,) = clock.sleeps
    assert 1.0 < waited <= 2.0
    assert [e.retry_after for e in events if isinstance(e, PauseStarted)] == [2.0]


def test_an_async_caller_waits_out_a_pause_another_process_started(
    url: str, client: redis.Redis
) -> None:
    """A pause in Redis (set by a sync process) is read with redis.asyncio and waited out."""
    RetryAfterPause(on=rs.transient, name="api", store=RedisStore(client)).start(3.0)
    clock = FakeClock()

    async def main() -> str:
        async with opened(url) as store:
            return await apause(store, clock).acall(ok)

    with capture_events() as events:
        assert run_async(main) == "ok"
    (waited,) = clock.sleeps
    assert 2.0 < waited <= 3.0
    assert [e.delay for e in events if isinstance(e, CallDelayed)] == [waited]


def test_a_pause_longer_than_max_wait_rejects_async_callers(url: str) -> None:
    """max_wait: a longer pause is a PausedError at once, as with the sync pause."""

    async def main() -> None:
        async with opened(url) as store:
            p = apause(store, max_wait=1.0)
            with pytest.raises(RateLimited):
                await p.acall(limited, 5.0)
            with pytest.raises(PausedError):
                await p.acall(ok)

    run_async(main)


def test_async_generators_and_async_with_are_paused(url: str) -> None:
    """An async stream and an `async with` block wait out the pause too."""
    clock = FakeClock()

    async def main() -> list[int]:
        async with opened(url) as store:
            p = apause(store, clock)

            @p
            async def numbers() -> AsyncIterator[int]:
                yield 1
                yield 2

            with pytest.raises(RateLimited):
                async with p:
                    raise RateLimited(2.0)
            return [n async for n in numbers()]

    assert run_async(main) == [1, 2]
    assert len(clock.sleeps) == 1


def test_a_sync_function_is_a_type_error_naming_the_sync_pause(url: str) -> None:
    """Decorating a sync function points to RetryAfterPause with a RedisStore."""
    store = AsyncRedisStore(redis.asyncio.Redis.from_url(url))
    with pytest.raises(TypeError, match="use RetryAfterPause with a RedisStore"):
        apause(store)(lambda: None)


def test_the_async_store_takes_only_an_async_client(client: redis.Redis) -> None:
    """A sync client is refused, naming RedisStore."""
    with pytest.raises(TypeError, match="use RedisStore"):
        AsyncRedisStore(client)  # type: ignore[arg-type]


def test_an_unreachable_redis_leaves_the_pause_local(own_server: RedisServer) -> None:
    """Redis down: StoreUnavailable, the pause is this process's own; back up: StoreRecovered."""
    clock = FakeClock()
    port = own_server.port
    own_server.kill()

    async def main() -> None:
        async with opened(own_server.url, timeout=0.5, reconnect=1.0) as store:
            p = apause(store, clock)
            with pytest.raises(RateLimited):
                await p.acall(limited, 2.0)
            assert await p.acall(ok) == "ok"  # paused here all the same
            assert len(clock.sleeps) == 1
            await asyncio.to_thread(own_server.start, port)
            clock.advance(5.0)
            assert await p.acall(ok) == "ok"

    with capture_events() as events:
        run_async(main)
    kinds = [type(e) for e in events if isinstance(e, (StoreUnavailable, StoreRecovered))]
    assert kinds == [StoreUnavailable, StoreRecovered]


def scripts_run(client: redis.Redis) -> int:
    """How many EVALSHA commands the server has run (each round trip of the pause is one)."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))


def cancel_once_redis_answered(url: str, client: redis.Redis, call: Any, trips: int) -> None:
    """Run *call(pause)* as a task, cancel it once Redis ran *trips* scripts: it ends cancelled."""

    async def main() -> None:
        async with opened(url, refresh=0.0) as store:  # every call reads Redis
            p = apause(store)
            await p.acall(ok)  # loads the scripts: each round trip below is one EVALSHA
            with pytest.raises(RateLimited):
                await p.acall(limited, 0.001)  # loads the write script too
            before = scripts_run(client)
            task = asyncio.create_task(call(p))
            await until(lambda: scripts_run(client) >= before + trips)  # a reply on the way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run_async(main)


def test_a_call_cancelled_while_its_read_reply_arrives_never_runs(
    url: str, client: redis.Redis
) -> None:
    """Issue #15: redis-py may return the read's reply despite the cancel; it is raised again."""

    async def never() -> None:
        raise AssertionError("the cancelled call ran")

    cancel_once_redis_answered(url, client, lambda p: p.acall(never), 1)


def test_a_call_cancelled_while_its_pause_is_written_ends_cancelled(
    url: str, client: redis.Redis
) -> None:
    """Issue #15: cancelled while the reply of the write that starts the pause is read."""

    async def main(p: AsyncRetryAfterPause) -> None:
        with contextlib.suppress(RateLimited):
            await p.acall(limited, 0.001)
        raise AssertionError("the cancellation was lost")

    cancel_once_redis_answered(url, client, main, 2)  # read, then write


def wait_until_redis_is_busy(address: str, sleeper: Background[object]) -> None:
    """Return once the server no longer answers a PING within 50 ms (it runs DEBUG SLEEP)."""
    while not sleeper.done:  # a DEBUG SLEEP that failed ends the wait (its error is raised later)
        probe = redis.Redis.from_url(address, socket_timeout=0.05, socket_connect_timeout=1.0)
        try:
            probe.ping()
        except redis.exceptions.TimeoutError:
            return
        finally:
            probe.close()


def test_a_slow_redis_never_holds_the_event_loop(url: str) -> None:
    """While DEBUG SLEEP stalls Redis, a ticker keeps ticking during the round trip (issue #15)."""
    sleeper = redis.Redis.from_url(url, socket_timeout=5.0)

    async def main() -> tuple[str, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.002)
                ticks += 1

        async with opened(url) as store:
            p = apause(store)  # its cache is empty: its first call reads Redis
            task = asyncio.create_task(ticker())
            slow = Background(lambda: sleeper.execute_command("DEBUG", "SLEEP", "0.5"))  # type: ignore[no-untyped-call]
            await asyncio.to_thread(wait_until_redis_is_busy, url, slow)
            before = ticks
            result = await p.acall(ok)  # its read waits behind DEBUG SLEEP
            during = ticks - before
            done = True
            await task
            await asyncio.to_thread(slow.result)
        return result, during

    result, during = run_async(main)
    sleeper.close()
    assert result == "ok"
    assert during >= 5, f"the loop ticked {during} times while Redis was slow"


FLEET_DOC = Path(__file__).resolve().parent.parent / "docs" / "fleet.md"


def test_the_fleet_pages_async_example_runs_as_written() -> None:
    """The python block of docs/fleet.md's "Async code" section builds (it connects on use)."""
    section = FLEET_DOC.read_text().split("## Async code", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict[str, object] = {"__name__": "fleet_doc_async"}
    run_block("fleet.md", block, namespace)
    assert isinstance(namespace["apause"], AsyncRetryAfterPause)
    breaker = namespace["abreaker"]
    assert isinstance(breaker, rs.CircuitBreaker)
    assert breaker.awaits


def test_under_trio_the_async_pause_says_it_needs_asyncio() -> None:
    """redis.asyncio needs asyncio: under trio the first round trip is a clear RuntimeError."""
    store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0")  # never reached

    async def main() -> None:
        await apause(store).acall(ok)

    with pytest.raises(RuntimeError, match=r"redis\.asyncio, which runs under asyncio only"):
        run_async(main, "trio")
