"""Streams: Timeout and Retry on generator and async generator functions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock, capture_events

from .forms import BACKENDS, cancel_task, cancelled_error, checkpoint, run_async

HANG = 10.0  # seconds a "hung" stream would wait; the tests cancel it long before
SHORT = 0.05  # real seconds for the timeouts that must really fire


class Hang:
    """A step that waits (async streams only) until cancelled."""


class Script:
    """
    A stream function whose n-th start plays ``runs[n]`` (the last run repeats).

    A step is an exception to raise, a `Hang`, a callable to call (its result is
    not yielded), or any other value, yielded.
    """

    def __init__(self, is_async: bool, *runs: list[Any]) -> None:
        self.is_async = is_async
        self.runs = runs
        self.starts = 0
        self.closed = 0
        self.fn: Callable[..., Any] = self._agen if is_async else self._gen

    def _run(self) -> list[Any]:
        self.starts += 1
        return self.runs[min(self.starts, len(self.runs)) - 1]

    def _gen(self) -> Iterator[Any]:
        try:
            for step in self._run():
                if isinstance(step, BaseException):
                    raise step
                if callable(step):
                    step()
                else:
                    yield step
        finally:
            self.closed += 1

    async def _agen(self) -> AsyncIterator[Any]:
        try:
            for step in self._run():
                await checkpoint()
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, Hang):
                    await anyio.sleep(HANG)
                elif callable(step):
                    step()
                else:
                    yield step
        finally:
            self.closed += 1


class Streams:
    """Builds and consumes streams the same way in their sync and async flavours (any backend)."""

    def __init__(self, backend: str | None) -> None:
        self.backend = backend
        self.is_async = backend is not None

    def __repr__(self) -> str:
        return self.backend or "sync"

    def script(self, *runs: list[Any]) -> Script:
        return Script(self.is_async, *runs)

    def collect(
        self,
        fn: Callable[..., Any],
        out: list[Any] | None = None,
        each: Callable[[Any], object] | None = None,
    ) -> list[Any]:
        """Consume the whole stream into *out* (kept when it raises), calling *each* per item."""
        items: list[Any] = [] if out is None else out
        if not self.is_async:
            for item in fn():
                items.append(item)
                if each is not None:
                    each(item)
            return items

        async def main() -> list[Any]:
            async for item in fn():
                items.append(item)
                if each is not None:
                    each(item)
            return items

        assert self.backend is not None
        return run_async(main, self.backend)


@pytest.fixture(
    params=[None, *BACKENDS],
    ids=["gen", *(f"agen-{b}" if b != "asyncio" else "agen" for b in BACKENDS)],
)
def streams(request: pytest.FixtureRequest) -> Streams:
    """Parametrizes a test over generator and async generator functions, in every backend."""
    return Streams(request.param)


def left() -> float:
    value = rs.deadline.remaining()
    assert value is not None
    return value


# --- Timeout on streams -------------------------------------------------------------


def test_stream_flows_under_its_timeout(streams: Streams) -> None:
    """Items of a stream within its limits all arrive."""
    script = streams.script([1, 2, 3])
    assert streams.collect(rs.Timeout(5, idle=1, clock=FakeClock())(script.fn)) == [1, 2, 3]
    assert (script.starts, script.closed) == (1, 1)


def test_each_wait_sees_the_earlier_of_total_and_idle(streams: Streams) -> None:
    """While waiting for an item, the deadline is the earlier of the total and idle limits."""
    clock = FakeClock()
    seen: list[float] = []
    script = streams.script([lambda: seen.append(left()), 1] * 3)
    wrapped = rs.Timeout(10, idle=3, clock=clock)(script.fn)
    # The consumer's time counts against the total, not against idle.
    streams.collect(wrapped, each=lambda item: clock.advance(4) if len(seen) < 3 else None)
    assert seen == [3.0, 3.0, 2.0]


def test_the_deadline_does_not_leak_to_the_consumer(streams: Streams) -> None:
    """Between items, the consumer's code runs under its own deadline, not the stream's."""
    seen: list[object] = []
    script = streams.script([1, 2])
    streams.collect(
        rs.Timeout(5, clock=FakeClock())(script.fn),
        each=lambda item: seen.append(rs.deadline.current()),
    )
    assert seen == [None, None]


def test_sync_stream_delivers_a_late_item_then_times_out() -> None:
    """A sync item that arrives after the idle limit is delivered; the next request raises."""
    clock = FakeClock()
    script = Script(False, [1, lambda: clock.advance(5), 2, 3])
    wrapped = rs.Timeout(10, idle=3, name="feed", clock=clock)(script.fn)
    got: list[Any] = []
    with capture_events() as events, pytest.raises(rs.TimeoutExceededError) as info:
        Streams(None).collect(wrapped, got)
    assert got == [1, 2]
    assert info.value.timeout == 3.0
    assert "idle timeout of 3 s" in str(info.value)
    assert [(e.name, e.idle) for e in events if isinstance(e, rs.TimeoutExpired)] == [
        ("feed", True)
    ]
    assert script.closed == 1


def test_sync_stream_total_limit_is_checked_before_each_request() -> None:
    """Once the total limit has passed, the next request raises without resuming the stream."""
    clock = FakeClock()
    resumed: list[bool] = []
    script = Script(False, [1, lambda: resumed.append(True), 2])
    got: list[Any] = []
    with pytest.raises(rs.TimeoutExceededError) as info:
        Streams(None).collect(
            rs.Timeout(5, clock=clock)(script.fn), got, each=lambda item: clock.advance(6)
        )
    assert (got, resumed, info.value.timeout) == ([1], [], 5.0)
    assert script.closed == 1


def test_async_stream_idle_limit_cancels_the_pending_item(backend: str) -> None:
    """An async stream that goes quiet for longer than idle is cancelled and closed."""
    script = Script(True, [1, Hang(), 2])
    got: list[Any] = []
    with capture_events() as events, pytest.raises(rs.TimeoutExceededError) as info:
        Streams(backend).collect(rs.Timeout(HANG, idle=SHORT)(script.fn), got)
    assert got == [1]
    assert info.value.timeout == SHORT
    assert isinstance(info.value.__cause__, cancelled_error(backend))
    assert [e.idle for e in events if isinstance(e, rs.TimeoutExpired)] == [True]
    assert script.closed == 1


def test_async_stream_total_limit_cancels_the_pending_item(backend: str) -> None:
    """An async stream still waiting when its total limit passes is cancelled."""
    script = Script(True, [Hang()])
    with capture_events() as events, pytest.raises(rs.TimeoutExceededError) as info:
        Streams(backend).collect(rs.Timeout(SHORT)(script.fn))
    assert info.value.timeout == SHORT
    assert [e.idle for e in events if isinstance(e, rs.TimeoutExpired)] == [False]
    assert script.closed == 1


def test_async_stream_consumer_time_is_not_idle_time(backend: str) -> None:
    """Time the consumer spends between items does not count against idle."""
    script = Script(True, [1, 2, 3])

    async def main() -> list[Any]:
        out = []
        async for item in rs.Timeout(HANG, idle=SHORT)(script.fn)():
            out.append(item)
            await anyio.sleep(2 * SHORT)
        return out

    assert run_async(main, backend) == [1, 2, 3]


def test_async_stream_outer_cancel_propagates(backend: str) -> None:
    """Cancelling the consuming task is a cancellation, and the stream is closed."""
    script = Script(True, [1, Hang()])
    got: list[Any] = []

    async def consume() -> None:
        async for item in rs.Timeout(HANG, idle=HANG)(script.fn)():
            got.append(item)

    with capture_events() as events:
        cancel_task(consume, lambda: bool(got), backend)
    assert events == []
    assert script.closed == 1


# --- Retry on streams -------------------------------------------------------------------


def make_retry(clock: FakeClock, **kwargs: Any) -> rs.Retry:
    kwargs.setdefault("on", ValueError)
    kwargs.setdefault("backoff", backoff.constant(1.0))
    return rs.Retry(clock=clock, **kwargs)


def test_retry_restarts_a_stream_that_fails_before_its_first_item(streams: Streams) -> None:
    """A retryable failure before any item reached the caller restarts the stream."""
    clock = FakeClock()
    script = streams.script([ValueError("a")], [ValueError("b")], [1, 2, 3])
    assert streams.collect(make_retry(clock)(script.fn)) == [1, 2, 3]
    assert (script.starts, script.closed, clock.sleeps) == (3, 3, [1.0, 1.0])


def test_retry_gives_up_on_a_stream_with_the_last_failure(streams: Streams) -> None:
    """When attempts run out before any item, the last exception is raised, noted."""
    clock = FakeClock()
    last = ValueError("third")
    script = streams.script([ValueError("first")], [ValueError("second")], [last])
    with pytest.raises(ValueError, match="third") as info:
        streams.collect(make_retry(clock)(script.fn))
    assert info.value is last
    assert info.value.__notes__ == ["resilience: gave up after 3 attempts over 2 s"]


def test_failure_after_an_item_raises_stream_interrupted(streams: Streams) -> None:
    """After an item reached the caller, a retryable failure is not restarted but reported."""
    clock = FakeClock()
    error = ValueError("connection dropped")
    script = streams.script([1, 2, error])
    got: list[Any] = []
    with pytest.raises(rs.StreamInterruptedError) as info:
        streams.collect(make_retry(clock)(script.fn), got)
    assert info.value.partial == got == [1, 2]
    assert info.value.__cause__ is error
    assert "after 2 items reached the caller" in str(info.value)
    assert (script.starts, script.closed, clock.sleeps) == (1, 1, [])


def test_non_retryable_failure_after_an_item_propagates_unchanged(streams: Streams) -> None:
    """A failure the classifier refuses goes to the caller as is, even mid-stream."""
    error = KeyError("bad item")
    script = streams.script([1, error])
    with pytest.raises(KeyError) as info:
        streams.collect(make_retry(FakeClock())(script.fn))
    assert info.value is error
    assert not hasattr(error, "__notes__")


def test_items_are_never_classified(streams: Streams) -> None:
    """Items a result rule would refuse still flow: only exceptions restart a stream."""
    retry = make_retry(FakeClock(), on=rs.Rule(when=lambda outcome: outcome == "busy"))
    script = streams.script(["busy", "busy"])
    assert streams.collect(retry(script.fn)) == ["busy", "busy"]
    assert script.starts == 1


def test_empty_stream(streams: Streams) -> None:
    """A stream that ends at once ends for the caller too."""
    script = streams.script([])
    assert streams.collect(rs.compose(make_retry(FakeClock()), rs.Timeout(5))(script.fn)) == []


def test_interrupts_pass_through_a_stream_untouched() -> None:
    """KeyboardInterrupt before the first item is not retried."""
    clock = FakeClock()
    script = Script(False, [KeyboardInterrupt()], [1])
    with pytest.raises(KeyboardInterrupt):
        Streams(None).collect(make_retry(clock)(script.fn))
    assert (script.starts, clock.sleeps) == (1, [])


# --- Retry and Timeout together on streams -------------------------------------------------


def test_timeout_outside_retry_bounds_all_restarts(streams: Streams) -> None:
    """compose(timeout, retry): restarts stop when the next would start past the deadline."""
    clock = FakeClock()
    script = streams.script([ValueError("down")])
    retry = make_retry(clock, attempts=10, backoff=backoff.constant(2.0))
    with pytest.raises(ValueError, match="down") as info:
        streams.collect(rs.compose(rs.Timeout(5, clock=clock), retry)(script.fn))
    assert clock.sleeps == [2.0, 2.0]
    assert "would start after the deadline" in info.value.__notes__[0]


def test_sync_stream_timed_out_before_its_first_item_is_restarted() -> None:
    """compose(retry, timeout): a sync stream out of time before any item starts again."""
    clock = FakeClock()
    script = Script(False, [lambda: clock.advance(3), rs.deadline.check, 1], [1, 2])
    retry = make_retry(clock, on=rs.transient)
    assert Streams(None).collect(rs.compose(retry, rs.Timeout(2, clock=clock))(script.fn)) == [
        1,
        2,
    ]
    assert script.starts == 2


def test_async_stream_timed_out_before_its_first_item_is_restarted(backend: str) -> None:
    """compose(retry, timeout): an async stream cancelled before any item starts again."""
    clock = FakeClock()
    script = Script(True, [Hang()], [1, 2])
    retry = make_retry(clock, on=rs.transient)
    assert Streams(backend).collect(rs.compose(retry, rs.Timeout(SHORT))(script.fn)) == [1, 2]
    assert (script.starts, script.closed, clock.sleeps) == (2, 2, [1.0])


def test_async_stream_timed_out_after_an_item_is_interrupted(backend: str) -> None:
    """compose(retry, timeout): an idle timeout after an item gives StreamInterruptedError."""
    script = Script(True, [1, Hang()])
    retry = make_retry(FakeClock(), on=rs.transient)
    with pytest.raises(rs.StreamInterruptedError) as info:
        Streams(backend).collect(rs.compose(retry, rs.Timeout(HANG, idle=SHORT))(script.fn))
    assert info.value.partial == [1]
    assert isinstance(info.value.__cause__, rs.TimeoutExceededError)
    assert script.starts == 1


# --- stopping early, send and throw ----------------------------------------------------------


def policies() -> list[Any]:
    retry = rs.Retry(on=ValueError, clock=FakeClock())
    timeout = rs.Timeout(HANG, idle=HANG)
    return [retry, timeout, rs.compose(retry, timeout), rs.compose(timeout, retry)]


POLICY_IDS = ["retry", "timeout", "retry+timeout", "timeout+retry"]


@pytest.mark.parametrize("policy", policies(), ids=POLICY_IDS)
def test_break_closes_the_generator(policy: Any) -> None:
    """A consumer that breaks out of a sync stream runs the generator's finally."""
    script = Script(False, [1, 2, 3])
    for _ in policy(script.fn)():
        break
    assert script.closed == 1


@pytest.mark.parametrize("policy", policies(), ids=POLICY_IDS)
def test_close_closes_the_generator(policy: Any) -> None:
    """close() on a sync stream runs the generator's finally."""
    script = Script(False, [1, 2, 3])
    stream = policy(script.fn)()
    assert next(stream) == 1
    stream.close()
    assert script.closed == 1


@pytest.mark.parametrize("policy", policies(), ids=POLICY_IDS)
def test_aclose_closes_the_async_generator(policy: Any, backend: str) -> None:
    """aclose() on an async stream runs the generator's finally."""
    script = Script(True, [1, 2, 3])

    async def main() -> int:
        stream = policy(script.fn)()
        assert await stream.__anext__() == 1
        await stream.aclose()
        return script.closed

    assert run_async(main, backend) == 1


@pytest.mark.parametrize("policy", policies(), ids=POLICY_IDS)
def test_async_break_closes_the_async_generator(policy: Any, backend: str) -> None:
    """An `async for` that breaks, inside aclosing(), runs the generator's finally."""
    script = Script(True, [1, 2, 3])

    async def main() -> int:
        async with contextlib.aclosing(policy(script.fn)()) as stream:
            async for _ in stream:
                break
        return script.closed

    assert run_async(main, backend) == 1


def test_send_is_forwarded() -> None:
    """send() reaches the generator through Retry and Timeout."""

    def doubler() -> Generator[int, int, None]:
        x = yield 0
        while True:
            x = yield x * 2

    stream = rs.compose(rs.Retry(on=ValueError), rs.Timeout(HANG))(doubler)()
    assert next(stream) == 0
    assert (stream.send(21), stream.send(5)) == (42, 10)
    stream.close()


def test_asend_is_forwarded(backend: str) -> None:
    """asend() reaches the async generator through Retry and Timeout."""

    async def doubler() -> AsyncGenerator[int, int]:
        x = yield 0
        while True:
            x = yield x * 2

    async def main() -> tuple[int, int]:
        stream = rs.compose(rs.Retry(on=ValueError), rs.Timeout(HANG))(doubler)()
        await stream.__anext__()
        try:
            return await stream.asend(21), await stream.asend(5)
        finally:
            await stream.aclose()

    assert run_async(main, backend) == (42, 10)


def test_throw_is_forwarded() -> None:
    """throw() reaches the generator, which may handle it and go on."""

    def tolerant() -> Generator[str, None, None]:
        try:
            yield "first"
        except ValueError:
            yield "handled"

    stream = rs.compose(rs.Retry(on=ValueError), rs.Timeout(HANG))(tolerant)()
    assert next(stream) == "first"
    assert stream.throw(ValueError("skip")) == "handled"


def test_a_thrown_exception_comes_back_unchanged() -> None:
    """An exception thrown in by the consumer and not handled comes back as is, not wrapped."""
    script = Script(False, [1, 2])
    error = ValueError("from the consumer")
    stream = rs.Retry(on=ValueError)(script.fn)()
    next(stream)
    with pytest.raises(ValueError, match="from the consumer") as info:
        stream.throw(error)
    assert info.value is error
    assert script.closed == 1


def test_athrow_is_forwarded(backend: str) -> None:
    """athrow() reaches the async generator, which may handle it and go on."""

    async def tolerant() -> AsyncGenerator[str, None]:
        try:
            yield "first"
        except ValueError:
            yield "handled"

    async def main() -> str:
        stream = rs.compose(rs.Retry(on=ValueError), rs.Timeout(HANG))(tolerant)()
        await stream.__anext__()
        try:
            return await stream.athrow(ValueError("skip"))
        finally:
            await stream.aclose()

    assert run_async(main, backend) == "handled"


def test_throw_after_the_deadline_still_reaches_the_generator() -> None:
    """Once time is up, a thrown-in exception is delivered (never lost); the item the
    generator answers with is delivered late, and the next request times out."""
    clock = FakeClock()
    seen: list[str] = []

    @rs.Timeout(10, clock=clock)
    def tolerant() -> Generator[str, None, None]:
        while True:
            try:
                yield "item"
            except KeyError:
                seen.append("KeyError")
                yield "handled"

    stream = tolerant()
    assert next(stream) == "item"
    clock.advance(11)
    assert stream.throw(KeyError("k")) == "handled"
    assert seen == ["KeyError"]
    with pytest.raises(rs.TimeoutExceededError):
        next(stream)


def test_athrow_after_the_deadline_still_reaches_the_generator(backend: str) -> None:
    """As for sync streams: the consumer's exception reaches an async generator late."""
    clock = FakeClock()

    @rs.Timeout(10, clock=clock)
    async def strict() -> AsyncGenerator[str, None]:
        yield "item"

    error = KeyError("from the consumer")

    async def main() -> None:
        stream = strict()
        await stream.__anext__()
        clock.advance(11)
        try:
            await stream.athrow(error)
        finally:
            await stream.aclose()

    with pytest.raises(KeyError) as info:
        run_async(main, backend)
    assert info.value is error  # delivered, unhandled, back unchanged


def test_generator_return_value_is_kept() -> None:
    """`yield from` a protected generator gets its return value."""

    def numbers() -> Generator[int, None, str]:
        yield 1
        return "done"

    def consumer() -> Generator[int, None, None]:
        result = yield from rs.compose(rs.Retry(on=ValueError), rs.Timeout(HANG))(numbers)()
        assert result == "done"

    assert list(consumer()) == [1]
