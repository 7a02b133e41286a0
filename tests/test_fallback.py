"""
Fallback (`rs.Fallback`): answer with something else when a call fails in a way *on* handles.

Every shape and surface, sync and async on real event loops: plain values,
callables, async callables and lists of fallbacks; refused results; streams
before and after their first item; rejections of an inner breaker or
bulkhead; cancellation and interpreter exits passing through; events,
chaining, explain, and bad configuration.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience._fallback import Fallback
from resilience.testing import capture_events
from tests.docs_blocks import run_block

from .forms import SYNC_ASYNC, Boom, Driver, backend_of, cancel_task, checkpoint, run_async


class Down(Exception):
    """What the fallbacks of these tests handle."""


class Response:
    """An HTTP response that did not raise, read by the classifiers through ``status_code``."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def failing(*args: Any, **kwargs: Any) -> Any:
    raise Down("primary down")


async def afailing(*args: Any, **kwargs: Any) -> Any:
    await checkpoint()
    raise Down("primary down")


def down(message: str = "") -> None:
    """Raise `Down` (a call, so that the ``yield`` after it stays reachable for mypy)."""
    raise Down(message)


def chain(error: BaseException) -> list[str]:
    """The texts of *error* and of the exceptions it chains (``__context__``), newest first."""
    out: list[str] = []
    current: BaseException | None = error
    while current is not None:
        out.append(str(current))
        current = current.__context__
    return out


# --- every shape and surface ---------------------------------------------------------


def test_a_plain_function_falls_back_to_a_value() -> None:
    @Fallback(on=Down, to="cached")
    def fn() -> str:
        raise Down

    assert fn() == "cached"


def test_success_returns_the_result_and_calls_no_fallback() -> None:
    called: list[object] = []

    @Fallback(on=Down, to=lambda exc: called.append(exc))
    def fn(x: int) -> int:
        return x * 2

    with capture_events() as events:
        assert fn(21) == 42
    assert called == []
    assert events == []


def test_a_callable_gets_the_failure_then_the_call_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    def fallback(exc: BaseException, *args: Any, **kwargs: Any) -> str:
        seen.append((exc, args, kwargs))
        return "fallback"

    error = Down("x")

    def fn(a: int, *, b: int) -> str:
        raise error

    assert Fallback(on=Down, to=fallback).call(fn, 1, b=2) == "fallback"
    assert seen == [(error, (1,), {"b": 2})]


def test_methods_classmethods_and_staticmethods_fall_back() -> None:
    fb = Fallback(on=Down, to=lambda exc, *args: ("fb", len(args)))

    class Service:
        @fb
        def method(self) -> tuple[str, int]:
            raise Down

        @fb
        @classmethod
        def above(cls) -> tuple[str, int]:
            raise Down

        @classmethod
        @fb
        def below(cls) -> tuple[str, int]:
            raise Down

        @fb
        @staticmethod
        def static() -> tuple[str, int]:
            raise Down

    service = Service()
    assert service.method() == ("fb", 1)  # the instance is an argument
    assert Service.above() == ("fb", 1)
    assert service.below() == ("fb", 1)
    assert Service.static() == ("fb", 0)


def test_a_coroutine_function_falls_back_to_a_value_a_sync_or_an_async_callable(
    backend: str,
) -> None:
    async def async_fallback(exc: BaseException, x: int) -> str:
        await checkpoint()
        return f"async {x}"

    async def main() -> list[str]:
        @Fallback(on=Down, to="value")
        async def a(x: int) -> Any:
            return await afailing()

        sync_fb = Fallback(on=Down, to=lambda exc, x: f"sync {x}")
        async_fb = Fallback(on=Down, to=async_fallback)
        return [await a(1), await sync_fb.acall(afailing, 2), await async_fb.acall(afailing, 3)]

    assert run_async(main, backend) == ["value", "sync 2", "async 3"]


def test_an_async_method_falls_back(backend: str) -> None:
    class Service:
        @Fallback(on=Down, to=lambda exc, self: type(self).__name__)
        async def fn(self) -> Any:
            return await afailing()

    assert run_async(Service().fn, backend) == "Service"


@SYNC_ASYNC
def test_what_on_does_not_handle_propagates_unchanged(is_async: Driver) -> None:
    fb = Fallback(on=Down, to="never")
    error = Boom("not handled")

    def fn() -> str:
        raise error

    async def afn() -> str:
        raise error

    with capture_events() as events, pytest.raises(Boom) as info:
        if is_async:
            run_async(lambda: fb.acall(afn), backend_of(is_async))
        else:
            fb.call(fn)
    assert info.value is error
    assert events == []


def test_on_accepts_a_tuple_a_predicate_and_a_classifier() -> None:
    assert Fallback(on=(KeyError, Down), to=1).call(failing) == 1
    assert Fallback(on=lambda exc: "primary" in str(exc), to=2).call(failing) == 2
    assert Fallback(on=rs.ErrorClassifier([rs.Rule(exception=Down)]), to=3).call(failing) == 3


def test_a_rule_that_would_not_retry_does_not_fall_back() -> None:
    on = rs.ErrorClassifier([rs.Rule(exception=Down, retry=False), rs.Rule(exception=Exception)])
    with pytest.raises(Down):
        Fallback(on=on, to="never").call(failing)
    missing: dict[str, str] = {}
    assert Fallback(on=on, to="fb").call(lambda: missing["key"]) == "fb"


# --- several fallbacks ----------------------------------------------------------------


def test_a_list_is_tried_in_order_each_getting_the_failure_before_it() -> None:
    seen: list[str] = []

    def first(exc: BaseException) -> str:
        seen.append(f"first saw {exc}")
        raise Down("first down")

    def second(exc: BaseException) -> str:
        seen.append(f"second saw {exc}")
        raise Down("second down")

    assert Fallback(on=Down, to=[first, second, "value"]).call(failing) == "value"
    assert seen == ["first saw primary down", "second saw first down"]


def test_the_first_fallback_that_answers_wins() -> None:
    second: list[object] = []
    fb = Fallback(on=Down, to=[lambda exc: "first", second.append])
    assert fb.call(failing) == "first"
    assert second == []


def test_the_last_failure_propagates_chained_to_the_ones_before() -> None:
    def first(exc: BaseException) -> str:
        raise Down("first down")

    def last(exc: BaseException) -> str:
        raise Down("last down")

    with pytest.raises(Down, match="last down") as info:
        Fallback(on=Down, to=[first, last]).call(failing)
    assert chain(info.value) == ["last down", "first down", "primary down"]


def test_a_fallback_failure_on_does_not_handle_propagates_at_once_chained() -> None:
    tried: list[object] = []

    def broken(exc: BaseException) -> str:
        raise Boom("fallback bug")

    with pytest.raises(Boom) as info:
        Fallback(on=Down, to=[broken, tried.append]).call(failing)
    assert tried == []
    assert isinstance(info.value.__context__, Down)


def test_an_async_list_tries_sync_and_async_fallbacks_in_order(backend: str) -> None:
    async def first(exc: BaseException) -> str:
        raise Down("async first down")

    def second(exc: BaseException) -> str:
        assert str(exc) == "async first down"
        return "second"

    assert (
        run_async(lambda: Fallback(on=Down, to=[first, second]).acall(afailing), backend)
        == "second"
    )

    async def last(exc: BaseException) -> str:
        raise Down("async last down")

    with pytest.raises(Down, match="async last down") as info:
        run_async(lambda: Fallback(on=Down, to=[first, last]).acall(afailing), backend)
    assert chain(info.value) == ["async last down", "async first down", "primary down"]


def test_two_fallbacks_compose_the_outer_catching_what_the_inner_lets_through() -> None:
    inner = Fallback(on=Down, to=lambda exc: (_ for _ in ()).throw(Boom("inner fallback")))
    outer = Fallback(on=Boom, to="outer")
    assert rs.compose(outer, inner).call(failing) == "outer"

    @outer
    @inner
    def fn() -> str:
        raise Down

    assert fn() == "outer"


# --- refused results ------------------------------------------------------------------

UNAVAILABLE = rs.ErrorClassifier([rs.Rule(status=503, kind="server"), rs.Rule(exception=Down)])


@SYNC_ASYNC
def test_a_refused_result_is_replaced_and_the_fallback_gets_the_result(is_async: Driver) -> None:
    bad: Any = Response(503)
    good: Any = Response(200)
    seen: list[object] = []

    def fallback(result: object) -> str:
        seen.append(result)
        return "fallback"

    fb = Fallback(on=UNAVAILABLE, to=fallback)

    async def abad() -> Any:
        return bad

    async def agood() -> Any:
        return good

    with capture_events() as events:
        if is_async:
            assert run_async(lambda: fb.acall(abad), backend_of(is_async)) == "fallback"
            assert run_async(lambda: fb.acall(agood), backend_of(is_async)) is good
            assert run_async(lambda: fb.acall(afailing), backend_of(is_async)) == "fallback"
        else:
            assert fb.call(lambda: bad) == "fallback"
            assert fb.call(lambda: good) is good
            assert fb.call(failing) == "fallback"
    assert seen[0] is bad
    assert isinstance(seen[1], Down)
    [first, second] = events
    assert isinstance(first, rs.FallbackUsed)
    assert first.error is None
    assert first.kind == "server"
    assert isinstance(second, rs.FallbackUsed)
    assert isinstance(second.error, Down)


def test_a_refused_result_from_a_fallback_moves_to_the_next() -> None:
    refused: Any = Response(503)
    fb = Fallback(on=UNAVAILABLE, to=[lambda r: Response(503), "cached"])
    assert fb.call(lambda: refused) == "cached"
    last = Response(503)
    assert Fallback(on=UNAVAILABLE, to=[lambda r: last]).call(lambda: Response(503)) is last


# --- sync fallbacks for sync calls --------------------------------------------------


def test_an_async_fallback_for_a_sync_function_fails_at_decoration() -> None:
    async def afb(exc: BaseException) -> str:
        return "never"

    with pytest.raises(TypeError, match="to: fallback afb is async"):
        Fallback(on=Down, to=afb)(failing)


def test_an_awaitable_returned_for_a_sync_call_is_a_type_error_naming_the_problem() -> None:
    async def later() -> str:
        return "never"

    with pytest.raises(TypeError, match="a sync call needs a sync fallback") as info:
        Fallback(on=Down, to=lambda exc: later()).call(failing)
    assert isinstance(info.value.__context__, Down)


# --- streams ----------------------------------------------------------------------------


def test_a_stream_that_fails_before_its_first_item_falls_back_to_an_iterable() -> None:
    def numbers(n: int) -> Iterator[Any]:
        down()
        yield 0

    assert list(Fallback(on=Down, to=lambda exc, n: iter(range(n)))(numbers)(3)) == [0, 1, 2]
    assert list(Fallback(on=Down, to=[["a", "b"]])(numbers)(5)) == ["a", "b"]


def test_a_stream_that_fails_after_its_first_item_propagates_unchanged() -> None:
    error = Down("midway")

    @Fallback(on=Down, to=[["never"]])
    def numbers() -> Iterator[int]:
        yield 1
        raise error

    got: list[int] = []
    with capture_events() as events, pytest.raises(Down) as info:
        for item in numbers():
            got.append(item)
    assert got == [1]
    assert info.value is error
    assert events == []


def test_a_sync_stream_forwards_send_and_close_and_returns_its_value() -> None:
    closed = threading.Event()

    @Fallback(on=Down, to=[[]])
    def echo() -> Generator[object, object, None]:
        try:
            sent = yield "ready"
            while True:
                sent = yield sent
        finally:
            closed.set()

    stream = echo()
    assert next(stream) == "ready"
    assert stream.send("hi") == "hi"
    stream.close()
    assert closed.is_set()

    @Fallback(on=Down, to=[[]])
    def ends() -> Generator[int, None, str]:
        if not closed.is_set():
            yield 0
        return "done"

    with pytest.raises(StopIteration) as info:
        next(ends())
    assert info.value.value == "done"


def test_a_stream_falls_back_to_a_generator_and_through_a_list_of_fallbacks() -> None:
    def broken(exc: BaseException) -> Iterator[str]:
        down("fallback stream down")
        yield "never"

    def good(exc: BaseException) -> Iterator[str]:
        assert str(exc) == "fallback stream down"
        yield "good"
        yield "stream"

    @Fallback(on=Down, to=[broken, good])
    def fn() -> Iterator[str]:
        down()
        yield "never"

    with capture_events() as events:
        assert list(fn()) == ["good", "stream"]
    [event] = events
    assert isinstance(event, rs.FallbackUsed)
    assert isinstance(event.error, Down)
    assert event.target is not None
    assert event.target.endswith("fn")


def test_a_stream_fallback_that_is_not_iterable_is_a_type_error() -> None:
    @Fallback(on=Down, to=42)
    def fn() -> Iterator[int]:
        down()
        yield 0

    with pytest.raises(TypeError, match="a stream falls back to an iterable"):
        next(fn())


def test_an_async_stream_falls_back_before_its_first_item(backend: str) -> None:
    async def async_items(exc: BaseException, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await checkpoint()
            yield i

    async def coroutine_giving_a_list(exc: BaseException, n: int) -> list[int]:
        return [n]

    def make(to: object) -> Any:
        @Fallback(on=Down, to=to)
        async def numbers(n: int) -> AsyncIterator[int]:
            await checkpoint()
            down()
            yield 0

        return numbers

    async def main() -> list[list[int]]:
        out = []
        for to in (async_items, coroutine_giving_a_list, [[7, 8]], lambda exc, n: iter([n])):
            out.append([item async for item in make(to)(2)])
        return out

    assert run_async(main, backend) == [[0, 1], [2], [7, 8], [2]]


def test_an_async_stream_that_fails_after_its_first_item_propagates_unchanged(backend: str) -> None:
    error = Down("midway")

    @Fallback(on=Down, to=[["never"]])
    async def numbers() -> AsyncIterator[int]:
        yield 1
        raise error

    got: list[int] = []

    async def main() -> None:
        async for item in numbers():
            got.append(item)

    with pytest.raises(Down) as info:
        run_async(main, backend)
    assert got == [1]
    assert info.value is error


def test_an_async_stream_forwards_asend_and_aclose(backend: str) -> None:
    closed: list[bool] = []

    @Fallback(on=Down, to=[[]])
    async def echo() -> AsyncGenerator[object, object]:
        try:
            sent = yield "ready"
            while True:
                sent = yield sent
        finally:
            closed.append(True)

    async def main() -> list[object]:
        stream = echo()
        out = [await stream.__anext__(), await stream.asend("hi")]
        await stream.aclose()
        return out

    assert run_async(main, backend) == ["ready", "hi"]
    assert closed == [True]


def test_an_async_stream_list_moves_on_and_chains_the_last_failure(backend: str) -> None:
    async def broken(exc: BaseException) -> AsyncIterator[str]:
        down("fallback stream down")
        yield "never"

    @Fallback(on=Down, to=[broken, broken])
    async def fn() -> AsyncIterator[str]:
        down("primary down")
        yield "never"

    async def main() -> list[str]:
        return [item async for item in fn()]

    with pytest.raises(Down, match="fallback stream down") as info:
        run_async(main, backend)
    assert chain(info.value) == ["fallback stream down", "fallback stream down", "primary down"]


# --- rejections ---------------------------------------------------------------------------


@SYNC_ASYNC
def test_an_open_circuit_falls_back_when_on_names_rejections(is_async: Driver) -> None:
    breaker = rs.CircuitBreaker(on=Down, failure_threshold=1, reset_timeout=60.0, name="llm")
    pipeline = rs.compose(Fallback(on=(rs.RejectedError, Down), to=lambda exc: exc), breaker)
    for _ in range(2):
        got = (
            run_async(lambda: pipeline.acall(afailing), backend_of(is_async))
            if is_async
            else pipeline.call(failing)
        )
    assert isinstance(got, rs.CircuitOpenError)
    with pytest.raises(rs.CircuitOpenError):
        rs.compose(Fallback(on=Down, to="never"), breaker).call(failing)


def test_a_full_bulkhead_falls_back(backend: str) -> None:
    bulkhead = rs.Bulkhead(max_concurrent=1)
    pipeline = rs.compose(Fallback(on=rs.RejectedError, to="busy"), bulkhead)

    async def main() -> list[str]:
        started, release = anyio.Event(), anyio.Event()
        out: list[str] = []

        async def slow() -> str:
            started.set()
            await release.wait()
            return "done"

        async def first() -> None:
            out.append(await pipeline.acall(slow))

        async with anyio.create_task_group() as group:  # a nursery, under trio
            group.start_soon(first)
            await started.wait()
            out.append(await pipeline.acall(slow))
            release.set()
        return out

    assert run_async(main, backend) == ["busy", "done"]


# --- never replaced ------------------------------------------------------------------------


def test_cancellation_is_never_replaced(backend: str) -> None:
    used: list[object] = []
    fb = Fallback(on=(Exception,), to=used.append)

    started: list[int] = []

    async def blocked() -> None:
        started.append(1)
        await anyio.sleep_forever()

    cancel_task(lambda: fb.acall(blocked), lambda: bool(started), backend)
    assert used == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit], ids=["interrupt", "exit"])
def test_interpreter_exits_are_never_replaced(error: type[BaseException]) -> None:
    used: list[object] = []

    def fn() -> str:
        raise error

    with pytest.raises(error):
        Fallback(on=Exception, to=used.append).call(fn)

    def stream() -> Iterator[str]:
        if not used:
            raise error
        yield "never"

    with pytest.raises(error):
        list(Fallback(on=Exception, to=used.append)(stream)())
    assert used == []


# --- events, chaining -----------------------------------------------------------------------


def test_fallback_used_says_who_what_and_which_kind() -> None:
    error = Down("x")
    on = rs.ErrorClassifier([rs.Rule(exception=Down, kind="network")])
    local: list[rs.Event] = []

    def fn() -> str:
        raise error

    with capture_events() as events:
        Fallback(on=on, to="v", name="llm", hooks=[local.append]).call(fn)
    [event] = events
    assert local == [event]
    assert isinstance(event, rs.FallbackUsed)
    assert (event.name, event.target, event.error, event.kind) == (
        "llm",
        fn.__qualname__,
        error,
        "network",
    )
    assert event.message().endswith("fallback used instead of Down")


def test_no_event_when_every_fallback_failed() -> None:
    def broken(exc: BaseException) -> str:
        raise Down("again")

    with capture_events() as events, pytest.raises(Down):
        Fallback(on=Down, to=broken).call(failing)
    assert events == []


# --- configuration, explain ----------------------------------------------------------------


def test_bad_configuration_fails_at_construction_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match="to"):
        Fallback(on=Down)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"to must name at least one fallback, got \[\]"):
        Fallback(on=Down, to=[])
    with pytest.raises(TypeError, match=r"^on must be"):
        Fallback(on=None, to=1)
    with pytest.raises(TypeError, match=r"^on must be"):
        Fallback(on=42, to=1)
    with pytest.raises(TypeError, match="hooks"):
        Fallback(on=Down, to=1, hooks=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="name"):
        Fallback(on=Down, to=1, name=3)  # type: ignore[arg-type]


def test_none_is_a_value_like_any_other() -> None:
    assert Fallback(on=Down, to=None).call(failing) is None


def test_with_is_a_type_error_saying_why(backend: str) -> None:
    fb = Fallback(on=Down, to=1)
    with (
        pytest.raises(TypeError, match="not a context manager: a `with` body returns no value"),
        fb,
    ):
        pass

    async def main() -> None:
        async with fb:
            pass  # type: ignore[unreachable]

    with pytest.raises(TypeError, match="not a context manager"):
        run_async(main, backend)


def test_a_fallback_is_immutable_hashable_and_compares_by_value() -> None:
    a = Fallback(on=Down, to=["x", "y"], name="n")
    assert a == Fallback(on=Down, to=["x", "y"], name="n")
    assert hash(a) == hash(a)
    assert a.to == ("x", "y")
    with pytest.raises(AttributeError):
        a.name = "m"  # type: ignore[misc]
    assert repr(a) == (
        "Fallback(on=ErrorClassifier([Rule(exception=tests.test_fallback.Down)]), "
        "to=['x', 'y'], name='n')"
    )


def cheaper_model(exc: BaseException, *args: Any, **kwargs: Any) -> str:
    return "cheap"


def test_explain_says_what_falls_back_and_to_what() -> None:
    on = rs.ErrorClassifier(
        [rs.Rule(exception=Down, kind="network"), rs.Rule(exception=Boom, retry=False)]
    )
    text = Fallback(on=on, to=[cheaper_model, "sorry"], name="llm").explain()
    assert text.splitlines()[:10] == [
        "Fallback 'llm': 2 fallbacks, in order",
        "  falls back on (first matching rule decides):",
        "    Down           falls back  network",
        "    Boom           propagates",
        "    anything else  propagates",
        "  to:",
        "    1. cheaper_model(failure, *args, **kwargs)",
        "    2. the value 'sorry'",
        "  streams fall back only before their first item",
        "  the time a fallback callable takes is not bounded here",
    ]
    assert Fallback(on=Down, to=1).describe().sleeps == 0.0
    assert Fallback(on=Down, to=cheaper_model).describe().sleeps is None


FALLBACK_DOC = Path(__file__).resolve().parent.parent / "docs" / "fallback.md"


def test_the_docs_examples_run_as_written() -> None:
    """Every python block of docs/fallback.md runs on its own, as a reader would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", FALLBACK_DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 5, "docs/fallback.md lost its examples"
    for number, block in enumerate(blocks, 1):
        namespace: dict[str, object] = {"__name__": f"fallback_doc_{number}"}
        run_block("fallback.md", block, namespace)
