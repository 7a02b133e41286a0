"""The core: shapes, the decorator on every kind of callable, compose and pipelines."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import operator
import pickle
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import wrapt

import resilience as rs
from resilience import backoff
from resilience._clock import SYSTEM_CLOCK, SystemClock
from resilience._pipeline import CALL, Runner, Shape, shape_of
from resilience.testing import FakeClock

from .forms import run_async


class Recorder:
    """A minimal third-party policy: records the order in which pipelines run it."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log
        self.bound: list[Shape] = []

    def __repr__(self) -> str:
        return f"Recorder({self.label!r})"

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        self.bound.append(shape)
        log, label = self.log, self.label
        if shape is Shape.ASYNC:

            async def arun(
                fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
            ) -> Any:
                log.append(f"{label}>")
                try:
                    return await inner(fn, args, kw)
                finally:
                    log.append(f"<{label}")

            return arun

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
            log.append(f"{label}>")
            try:
                return inner(fn, args, kw)
            finally:
                log.append(f"<{label}")

        return run


def retry_on_value_error(attempts: int = 3) -> rs.Retry:
    return rs.Retry(
        on=ValueError, attempts=attempts, backoff=backoff.constant(0.5), clock=FakeClock()
    )


# --- shapes ------------------------------------------------------------------------


def test_shapes_are_detected() -> None:
    """Functions, coroutine, generator and async generator functions are told apart."""

    def f() -> None: ...
    async def af() -> None: ...
    def g() -> Iterator[int]:
        yield 1

    async def ag() -> AsyncIterator[int]:
        yield 1

    assert [shape_of(x) for x in (f, af, g, ag)] == [
        Shape.SYNC,
        Shape.ASYNC,
        Shape.GEN,
        Shape.AGEN,
    ]
    assert shape_of(functools.partial(af)) is Shape.ASYNC


def test_decorated_functions_keep_their_identity() -> None:
    """Name, docstring, signature and kind survive decoration."""
    retry = retry_on_value_error()

    def f(a: int, *, b: str = "x") -> str:
        """Doc."""
        return f"{a}{b}"

    async def af(a: int) -> int:
        return a

    df, daf = retry(f), retry(af)
    assert (df.__name__, df.__doc__, df.__wrapped__) == ("f", "Doc.", f)  # type: ignore[attr-defined]
    assert inspect.signature(df) == inspect.signature(f)
    assert inspect.iscoroutinefunction(daf)
    assert not inspect.iscoroutinefunction(df)


def _shapes_with_defaults() -> list[Callable[..., Any]]:
    def f(a: int, b: int = 1, *, c: str = "x") -> None: ...
    async def af(a: int, b: int = 1, *, c: str = "x") -> None: ...
    def g(a: int, b: int = 1, *, c: str = "x") -> Iterator[int]:
        yield a

    async def ag(a: int, b: int = 1, *, c: str = "x") -> AsyncIterator[int]:
        yield a

    return [f, af, g, ag]


_DEFAULTS_DECORATIONS: dict[str, Callable[[], Callable[[Callable[..., Any]], Any]]] = {
    "retry": retry_on_value_error,
    "fallback (its own closure)": lambda: rs.Fallback(on=ValueError, to=lambda exc: None),
    "timeout": lambda: rs.Timeout(5.0),
    "pipeline": lambda: rs.compose(retry_on_value_error(), rs.Timeout(5.0)),
    "stacked": lambda: lambda fn: retry_on_value_error()(rs.Timeout(5.0)(fn)),
}


@pytest.mark.parametrize("how", list(_DEFAULTS_DECORATIONS))
@pytest.mark.parametrize("index", range(4), ids=["sync", "async", "gen", "agen"])
def test_decorated_functions_keep_their_defaults(how: str, index: int) -> None:
    """#18.8: __defaults__ and __kwdefaults__ survive every decoration, on every shape."""
    fn = _shapes_with_defaults()[index]
    decorated = _DEFAULTS_DECORATIONS[how]()(fn)
    assert (decorated.__defaults__, decorated.__kwdefaults__) == ((1,), {"c": "x"})


def test_decorated_methods_keep_their_defaults() -> None:
    """#18.8: a method's defaults survive decoration above and below classmethod."""

    class Box:
        @retry_on_value_error()
        def method(self, b: int = 1, *, c: str = "x") -> None: ...

        @retry_on_value_error()
        @classmethod
        def above(cls, b: int = 1, *, c: str = "x") -> None: ...

        @classmethod
        @retry_on_value_error()
        def below(cls, b: int = 1, *, c: str = "x") -> None: ...

    for method in (Box().method, Box.above, Box.below):
        assert (method.__defaults__, method.__kwdefaults__) == ((1,), {"c": "x"})


class Service:
    """Every kind of method, decorated above and below the descriptor."""

    def __init__(self) -> None:
        self.calls = 0

    @retry_on_value_error()
    def method(self, x: int) -> tuple[Service, int]:
        self.calls += 1
        if self.calls < 2:
            raise ValueError
        return self, x

    @retry_on_value_error()
    async def amethod(self, x: int) -> tuple[Service, int]:
        self.calls += 1
        if self.calls < 2:
            raise ValueError
        return self, x

    @retry_on_value_error()
    @classmethod
    def cm_above(cls, x: int) -> tuple[type[Service], int]:
        return cls, x

    @classmethod
    @retry_on_value_error()
    def cm_below(cls, x: int) -> tuple[type[Service], int]:
        return cls, x

    @retry_on_value_error()
    @staticmethod
    def sm_above(x: int) -> int:
        return x

    @staticmethod
    @retry_on_value_error()
    def sm_below(x: int) -> int:
        return x


class SubService(Service):
    pass


def test_instance_method_binds_self() -> None:
    """A decorated method receives its instance and is retried."""
    svc = Service()
    assert svc.method(1) == (svc, 1)
    assert svc.calls == 2


def test_async_instance_method_binds_self(backend: str) -> None:
    """A decorated coroutine method receives its instance and is retried."""
    svc = Service()
    assert run_async(lambda: svc.amethod(2), backend) == (svc, 2)
    assert svc.calls == 2


@pytest.mark.parametrize("name", ["cm_above", "cm_below"])
def test_classmethods_either_side(name: str) -> None:
    """Policies decorate classmethods whether above or below @classmethod."""
    assert getattr(SubService, name)(3) == (SubService, 3)
    assert getattr(SubService(), name)(3) == (SubService, 3)


@pytest.mark.parametrize("name", ["sm_above", "sm_below"])
def test_staticmethods_either_side(name: str) -> None:
    """Policies decorate staticmethods whether above or below @staticmethod."""
    assert getattr(Service, name)(4) == 4
    assert getattr(Service(), name)(4) == 4


def test_callable_objects_and_partials() -> None:
    """Callable objects and partials are decorated through wrapt and keep working."""

    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def __call__(self, x: int) -> int:
            self.n += 1
            if self.n < 2:
                raise ValueError
            return x * 10

    counter = Counter()
    wrapped = retry_on_value_error()(counter)
    assert wrapped(2) == 20
    assert wrapped.n == 2  # type: ignore[attr-defined]  # attribute access is forwarded
    partial = retry_on_value_error()(functools.partial(lambda a, b: a + b, 1))
    assert partial(2) == 3


def test_async_callable_object(backend: str) -> None:
    """An object with an async __call__ is driven as a coroutine function."""

    class Fetch:
        def __init__(self) -> None:
            self.n = 0

        async def __call__(self) -> int:
            self.n += 1
            if self.n < 3:
                raise ValueError
            return self.n

    assert run_async(lambda: retry_on_value_error()(Fetch())(), backend) == 3


def test_decorating_a_non_callable_is_a_type_error() -> None:
    """Decorating something that cannot be called fails at once."""
    with pytest.raises(TypeError, match="a policy decorates callables, got int"):
        retry_on_value_error()(3)  # type: ignore[arg-type]


# --- composition ---------------------------------------------------------------------


def test_compose_runs_the_first_policy_outermost() -> None:
    """compose(a, b, c) behaves as @a @b @c: a runs first."""
    log: list[str] = []
    pipeline = rs.compose(Recorder("a", log), Recorder("b", log), Recorder("c", log))
    assert pipeline(lambda: log.append("call"))() is None
    assert log == ["a>", "b>", "c>", "call", "<c", "<b", "<a"]


def test_stacked_decorators_fuse_into_one_wrapper() -> None:
    """@a @b f and compose(a, b)(f) are the same single wrapper over f."""
    log: list[str] = []
    a, b = Recorder("a", log), Recorder("b", log)

    def f() -> str:
        log.append("call")
        return "x"

    stacked = rs.compose(a)(rs.compose(b)(f))
    assert stacked.__wrapped__ is f  # type: ignore[attr-defined]
    assert stacked.__resilience__.pipeline.policies == (a, b)  # type: ignore[attr-defined]
    assert stacked() == "x"
    assert log == ["a>", "b>", "call", "<b", "<a"]


def test_a_users_wraps_copy_is_not_fused() -> None:
    """A user decorator between two policies stays in place (its __dict__ copy is not trusted)."""
    log: list[str] = []

    def user_deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*a: Any, **k: Any) -> Any:
            log.append("user")
            return fn(*a, **k)

        return inner

    def body() -> None:
        return None

    f = rs.compose(Recorder("a", log))(user_deco(rs.compose(Recorder("b", log))(body)))
    f()
    assert log == ["a>", "user", "b>", "<b", "<a"]


def test_compose_flattens_and_exposes_policies() -> None:
    """Nested pipelines flatten; .policies lists the policies outermost first."""
    r1, r2, r3 = retry_on_value_error(1), retry_on_value_error(2), retry_on_value_error(3)
    assert rs.compose(r1, rs.compose(r2, r3)).policies == (r1, r2, r3)
    assert rs.compose(r1, r2) == rs.compose(r1, r2)
    assert repr(rs.compose(r1)).startswith("compose(Retry(")


def test_compose_rejects_non_policies() -> None:
    """compose names the argument that is not a policy."""
    with pytest.raises(TypeError, match="compose\\(\\) argument 1 must be a policy"):
        rs.compose(retry_on_value_error(), "retry")  # type: ignore[arg-type]


class _NotCallableBind:
    bind = 3


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (None, "got NoneType: None"),
        (_NotCallableBind(), "got _NotCallableBind"),
        (rs.Timeout, r"got the class Timeout: call it to make one \(Timeout\(...\)\)"),
    ],
    ids=["none", "bind-not-callable", "a-class"],
)
def test_compose_rejects_what_cannot_bind(policy: object, message: str) -> None:
    """Only objects with a callable bind() are policies; a class gets a hint."""
    with pytest.raises(TypeError, match=message):
        rs.compose(policy)  # type: ignore[arg-type]


def test_pipeline_binds_once_per_shape() -> None:
    """Composition is resolved once per shape, not per call."""
    rec = Recorder("a", [])
    pipeline = rs.compose(rec)
    f = pipeline(lambda: 1)
    for _ in range(3):
        f()
        pipeline.call(lambda: 2)
    assert rec.bound == [Shape.SYNC]


def test_empty_pipeline_is_a_pass_through() -> None:
    """compose() with no policies calls the function directly."""
    assert rs.compose().runner(Shape.SYNC) is CALL
    assert rs.compose().call(lambda x: x + 1, 1) == 2


def test_pipeline_call_and_acall(backend: str) -> None:
    """Pipeline.call and Pipeline.acall run one call under every policy."""
    log: list[str] = []
    pipeline = rs.compose(Recorder("a", log))

    async def af(x: int) -> int:
        return x

    assert pipeline.call(lambda x: x, 5) == 5
    assert run_async(lambda: pipeline.acall(af, 6), backend) == 6
    assert log == ["a>", "<a", "a>", "<a"]


def test_policy_protocol_is_runtime_checkable() -> None:
    """Retry and a third-party policy both satisfy rs.Policy."""
    assert isinstance(retry_on_value_error(), rs.Policy)
    assert isinstance(Recorder("x", []), rs.Policy)
    assert not isinstance(object(), rs.Policy)


def test_retry_inside_compose_with_another_policy(mode: Any) -> None:
    """Retry outside another policy re-runs it on every attempt."""
    log: list[str] = []
    clock = FakeClock()
    retry = rs.Retry(on=ValueError, backoff=backoff.constant(1.0), clock=clock)
    calls = []

    def body() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError
        return "done"

    fn = rs.compose(retry, Recorder("inner", log))(mode.make(body))
    assert mode.run(fn) == "done"
    assert log == ["inner>", "<inner"] * 3
    assert clock.sleeps == [1.0, 1.0]


# --- callables that cannot take attributes ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FrozenCall:
    factor: int

    def __call__(self, x: int) -> int:
        return x * self.factor


class _SlottedCall:
    __slots__ = ("factor",)

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return x * self.factor


class _PlainCall:
    def __call__(self, x: int) -> int:
        return x + 1


@pytest.mark.parametrize(
    ("target", "args", "expected"),
    [
        (_FrozenCall(3), (2,), 6),
        (_SlottedCall(4), (2,), 8),
        (_PlainCall(), (2,), 3),
        (operator.itemgetter(0), ([7, 8],), 7),
        (str.upper, ("ab",), "AB"),
        (int, ("12",), 12),
        (_PlainCall, (), None),  # a class: calling it makes an instance
    ],
    ids=[
        "frozen-dataclass",
        "slots",
        "plain-object",
        "itemgetter",
        "method-descriptor",
        "int",
        "class",
    ],
)
def test_callables_are_decorated_without_being_mutated(
    target: Callable[..., Any], args: tuple[Any, ...], expected: object
) -> None:
    """Objects without a writable __dict__ decorate and work; none gains an attribute."""
    before = dict(vars(target)) if hasattr(target, "__dict__") else None
    wrapped = rs.Timeout(1.0)(target)
    result = wrapped(*args)
    if target is _PlainCall:
        assert isinstance(result, _PlainCall)
    else:
        assert result == expected
    if before is not None:
        assert dict(vars(target)) == before
    assert not hasattr(target, "__resilience__")


@pytest.mark.parametrize(
    "target",
    [_FrozenCall(2), _SlottedCall(2), _PlainCall(), operator.itemgetter(0)],
    ids=["frozen-dataclass", "slots", "plain-object", "itemgetter"],
)
def test_stacked_decorators_fuse_over_callable_objects(target: Callable[..., Any]) -> None:
    """@a @b over a callable object is one wrapper over the object, a outermost."""
    log: list[str] = []
    a, b = Recorder("a", log), Recorder("b", log)
    stacked = rs.compose(a)(rs.compose(b)(target))
    assert stacked.__wrapped__ is target  # type: ignore[attr-defined]
    argument: Any = [5] if isinstance(target, operator.itemgetter) else 5
    assert stacked(argument) == target(argument)
    assert log == ["a>", "b>", "<b", "<a"]


def test_a_users_proxy_over_a_decorated_object_is_not_fused() -> None:
    """A user's wrapt proxy between two policies stays in place."""
    log: list[str] = []

    def user(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        log.append("user")
        return wrapped(*args, **kwargs)

    inner = rs.compose(Recorder("b", log))(_PlainCall())
    outer = rs.compose(Recorder("a", log))(wrapt.FunctionWrapper(inner, user))
    assert outer(1) == 2
    assert log == ["a>", "user", "b>", "<b", "<a"]


# --- pickling and copying ---------------------------------------------------------------


def _round_trips(value: object) -> list[object]:
    return [pickle.loads(pickle.dumps(value)), copy.deepcopy(value), copy.copy(value)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: rs.Retry(on=ValueError, attempts=2),
        lambda: rs.Retry(on=rs.transient),
        lambda: rs.Timeout(3.0),
    ],
    ids=["retry-on-type", "retry-transient", "timeout"],
)
@pytest.mark.parametrize("used", [False, True], ids=["fresh", "used"])
def test_policies_pickle_and_copy_before_and_after_use(
    make: Callable[[], Any], used: bool, backend: str
) -> None:
    """Retry and Timeout round-trip equal through pickle and copy, even after calls."""
    policy = make()
    if used:

        async def af() -> int:
            return 2

        assert policy(lambda: 1)() == 1
        assert policy.call(lambda: 1) == 1
        assert run_async(lambda: policy.acall(af), backend) == 2
    for clone in _round_trips(policy):
        assert type(clone) is type(policy)
        assert clone == policy
        assert hash(clone) == hash(policy)
        assert clone.call(lambda: 3) == 3  # type: ignore[attr-defined]
        assert run_async(functools.partial(clone.acall, af_five), backend) == 5  # type: ignore[attr-defined]


async def af_five() -> int:
    return 5


def test_unpickled_policy_runs_through_itself() -> None:
    """An unpickled policy's own pipeline holds the clone, not the original."""
    retry = rs.Retry(on=ValueError, attempts=3, backoff=backoff.constant(0.0))
    retry.call(lambda: 1)
    clone = pickle.loads(pickle.dumps(retry))
    assert clone._pipeline.policies[0] is clone
    assert copy.deepcopy(retry)._pipeline.policies[0] is not retry
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError
        return "ok"

    assert clone(flaky)() == "ok"
    assert len(calls) == 3


def test_pipeline_pickles_without_its_runners() -> None:
    """A pipeline that has run pickles and copies as its policies; runners are rebuilt."""
    pipeline = rs.compose(rs.Retry(on=ValueError), rs.Timeout(2.0))
    assert pipeline.call(lambda: 1) == 1
    for clone in _round_trips(pipeline):
        assert isinstance(clone, rs.Pipeline)
        assert clone == pipeline
        assert clone.call(lambda: 4) == 4


def test_the_system_clock_pickles_and_copies_as_itself() -> None:
    """SYSTEM_CLOCK stays the one shared instance through pickle and copy."""
    for clone in _round_trips(SYSTEM_CLOCK):
        assert clone is SYSTEM_CLOCK
    assert SystemClock() is SYSTEM_CLOCK
    assert pickle.loads(pickle.dumps(rs.Timeout(3))) == rs.Timeout(3)


# --- a lone policy's own closure ---------------------------------------------------------


class Marked:
    """A policy that tags results, through its runner or through its own closure."""

    def __init__(self, offer: bool) -> None:
        self.offer = offer
        self.closures: list[Shape] = []

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        if shape is Shape.ASYNC:

            async def arun(fn: Any, args: Any, kwargs: Any) -> Any:
                return ("runner", await inner(fn, args, kwargs))

            return arun

        def run(fn: Any, args: Any, kwargs: Any) -> Any:
            return ("runner", inner(fn, args, kwargs))

        return run

    def closure(self, fn: Any, shape: Shape, /) -> Any:
        if not self.offer or shape is not Shape.SYNC:
            return None
        self.closures.append(shape)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return ("closure", fn(*args, **kwargs))

        return wrapper


def test_a_lone_policy_decorates_with_its_own_closure(backend: str) -> None:
    """One policy with closure(): the decorator uses it for plain functions; else the runner."""
    policy = Marked(offer=True)

    @rs.compose(policy)
    def f(x: int) -> Any:
        return x + 1

    assert f(1) == ("closure", 2)
    assert policy.closures == [Shape.SYNC]
    assert f.__name__ == "f"  # still wrapped like any decorated function
    called: Any = rs.compose(policy).call(lambda: 3)
    assert called == ("runner", 3)  # call() runs the runner

    async def g() -> Any:
        return 4

    assert run_async(lambda: rs.compose(policy)(g)(), backend) == (
        "runner",
        4,
    )  # closure() said None


def test_a_closure_is_not_used_once_policies_are_stacked() -> None:
    """Stacked decorators fuse into one runner: a policy's own closure is for it alone."""
    inner, outer = Marked(offer=True), Marked(offer=True)

    @rs.compose(outer)
    @rs.compose(inner)
    def f() -> Any:
        return 1

    assert f() == ("runner", ("runner", 1))
    assert inner.closures == [Shape.SYNC]  # used when it decorated alone, then fused away
    refused: Any = rs.compose(Marked(offer=False))(lambda: 0)()
    assert refused == ("runner", 0)


def test_fallback_alone_and_stacked_answers_the_same() -> None:
    """Fallback's own closure and its runner give the same answers and events."""
    fallback = rs.Fallback(on=ValueError, to=lambda exc, x: -x)

    def boom(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x

    alone = fallback(boom)
    stacked = rs.Retry(on=KeyError)(fallback(boom))

    def called(x: int) -> int:
        return fallback.call(boom, x)

    for decorated in (alone, stacked, called):
        assert decorated(2) == 2
        assert decorated(-3) == 3
