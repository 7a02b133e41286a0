"""
The policy protocol and the pipeline: shapes, runners, `Policy`, `compose`/`Pipeline`.

How a call flows. A policy never wraps a function directly: it *binds* a
runner. A runner is ``run(fn, args, kwargs) -> outcome``; the innermost one,
`CALL`, simply calls ``fn(*args, **kwargs)``. ``policy.bind(inner, shape)``
returns a runner that applies the policy around *inner*. A `Pipeline` binds its
policies once per shape, innermost first, and caches the result, so that a
decorated call costs one small closure plus each policy's own logic: no
per-call composition, no `inspect`, no allocation beyond the argument tuple.
Because runners take ``fn`` as an argument they serve every function,
`Pipeline.call` and bound methods alike.

`PolicyMixin` gives a policy class the surfaces of a one-policy pipeline. The
decorator itself lives in `resilience._decorate`, deadlines in
`resilience._deadline`, and what `Pipeline.explain` says in `resilience._explain`.
"""

from __future__ import annotations

import enum
import inspect
import types
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, Self, TypeVar, final, runtime_checkable

import attrs

from ._classify import REQUIRED, ErrorClassifier
from ._events import redact

__all__ = [
    "CALL",
    "Pipeline",
    "Policy",
    "PolicyMixin",
    "Runner",
    "Shape",
    "compose",
    "pipeline_field",
    "shape_of",
    "target_name",
]

P = ParamSpec("P")
R = TypeVar("R")


class Runner(Protocol):
    """
    ``run(fn, args, kwargs)``: runs ``fn(*args, **kwargs)`` under some policies.

    What `Policy.bind` receives (the policies inside) and returns (itself
    around them). A runner does not know *fn* in advance: one runner serves
    every function a pipeline decorates, and every call passes the function
    and its arguments, unpacked only by the innermost runner.

    For `Shape.SYNC` it returns the result, for `Shape.ASYNC` an awaitable,
    for `Shape.GEN` an iterator, for `Shape.AGEN` an async iterator.
    """

    def __call__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], /
    ) -> Any: ...


class Shape(enum.Enum):
    """The four shapes of callables a policy protects, detected once at decoration."""

    SYNC = "function"
    ASYNC = "coroutine function"
    GEN = "generator function"
    AGEN = "async generator function"

    # Members are singletons, equal only to themselves: the identity hash is
    # right, and runs in C where Enum's hashes the name in Python. Pipelines
    # look their runner up by shape on every `call` / `acall`.
    __hash__ = object.__hash__


_DETECTORS = (
    (inspect.isasyncgenfunction, "AGEN"),
    (inspect.iscoroutinefunction, "ASYNC"),
    (inspect.isgeneratorfunction, "GEN"),
)


def shape_of(fn: Callable[..., Any]) -> Shape:
    """Return the shape of *fn*, looking through partials, bound methods and ``__call__``."""
    candidates: list[object] = [fn]
    if not isinstance(fn, types.FunctionType | types.MethodType):
        # A callable object: what matters is the kind of its __call__.
        candidates.append(getattr(type(fn), "__call__", None))  # noqa: B004
    for candidate in candidates:
        for detect, shape in _DETECTORS:
            if detect(candidate):
                return Shape[shape]
    return Shape.SYNC


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The innermost runner: ``fn(*args, **kwargs)``."""
    return fn(*args, **kwargs)


CALL: Runner = _call
"""The innermost runner: calls the function. Policies may test ``inner is CALL``
to call ``fn`` directly and save a frame."""


def target_name(fn: object) -> str:
    """Return a label for *fn* in events and notes (its qualified name)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return type(fn).__name__


# --- call / acall: the wrong kind of callable ---------------------------------------
#
# ``call`` reads ``fn.__code__.co_flags`` (a bound method and a wrapt proxy show
# their function's): a function without these flags is a sync function, and
# that test is all its success path pays. Anything else (a flag, or no code of
# its own: a builtin, a partial, a callable object) gets the slow look below.
# ``acall`` cannot tell in advance: a sync lambda may return a coroutine, so
# what it runs without the coroutine flag is judged by its result.

_COROUTINE = inspect.CO_COROUTINE
_STREAM = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_NOT_SYNC = _COROUTINE | _STREAM | inspect.CO_ITERABLE_COROUTINE
# Enum members are looked up through their class on every access: the runner
# caches are read with these on every `call` / `acall`.
_SYNC = Shape.SYNC
_ASYNC = Shape.ASYNC


def _kind(shape: Shape) -> str:
    return f"{'an' if shape is Shape.AGEN else 'a'} {shape.value}"


def _refuse(
    owner: object, method: str, fn: object, shape: Shape | None, why: str = ""
) -> TypeError:
    """The TypeError for ``owner.<method>(fn)``: *fn* is not callable, or of *shape*."""
    policy = type(owner).__name__
    if shape is None:
        shown = redact(repr(fn))  # a string given by mistake may be a key
        return TypeError(f"{policy}.{method}() runs callables, got {type(fn).__name__}: {shown}")
    runs = "sync functions" if method == "call" else "coroutine functions"
    name = target_name(fn)
    if shape is Shape.ASYNC:
        advice = f"use await {policy}.acall({name}, ...)"
    elif shape is Shape.SYNC:
        advice = f"use {policy}.call({name}, ...)"
    else:
        advice = "decorate it, so that the policies cover its iteration"
    return TypeError(
        f"{policy}.{method}() runs {runs}, and {name} is {_kind(shape)}{why}: {advice}"
    )


def check_sync(owner: object, fn: object) -> None:
    """Raise the TypeError that ``owner.call(fn)`` deserves, unless *fn* is a sync callable."""
    if type(fn) is types.BuiltinFunctionType:
        return
    if not callable(fn):
        raise _refuse(owner, "call", fn, None)
    shape = shape_of(fn)
    if shape is not Shape.SYNC:
        raise _refuse(owner, "call", fn, shape)


class NotAwaitable(BaseException):
    """
    Raised through the policies by `awaitable_only`'s copy: none handles or counts it.

    A sync function given to ``acall`` has run, and neither succeeded nor
    failed; ``acall`` raises the TypeError this carries instead.
    """


def awaitable_only(owner: object, fn: Callable[..., Any], flags: int) -> Callable[..., Any]:
    """
    Return *fn* for ``owner.acall(fn)``, or a copy that refuses a result that is not awaitable.

    *flags* are ``fn.__code__.co_flags`` (0 when it has none), without the
    coroutine flag. The copy raises `NotAwaitable` holding the TypeError.

    Raises:
        TypeError: If *fn* is not callable, or is a (async) generator function.
    """
    if not flags or (flags & _STREAM and not flags & inspect.CO_ITERABLE_COROUTINE):
        if not callable(fn):
            raise _refuse(owner, "acall", fn, None)
        shape = shape_of(fn)
        if shape is Shape.ASYNC:
            return fn
        if shape is not Shape.SYNC:
            raise _refuse(owner, "acall", fn, shape)

    def awaitable(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if type(result) is types.CoroutineType or inspect.isawaitable(result):
            return result
        why = f" (it returned {type(result).__name__}, not an awaitable)"
        raise NotAwaitable(_refuse(owner, "acall", fn, Shape.SYNC, why))

    awaitable.__qualname__ = target_name(fn)  # events and notes name the caller's function
    return awaitable


@runtime_checkable
class Policy(Protocol):
    """
    What `compose` and the decorator need from a policy.

    Implement `bind` to plug a new policy (a bulkhead, a rate limiter) into
    pipelines without touching the core. Implement ``describe() ->
    resilience.Description`` too, optionally, so that `Pipeline.explain` can
    say what it does and how it bounds a call; without it, the policy is shown
    by its repr and assumed to add neither runs nor time.

    Optionally, ``closure(fn, shape)`` returns a wrapper that applies the
    policy to the plain function *fn* in one frame (a coroutine function for
    `Shape.ASYNC`), or `None`; the decorator uses it when the policy is alone,
    instead of a wrapper calling the bound runner (two frames). It must behave
    exactly as ``bind(CALL, shape)`` does.
    """

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner that applies this policy around *inner* for callables of *shape*.

        Called once per pipeline and shape, never per call.

        Raises:
            TypeError: If the policy does not support *shape*.
        """
        ...


def _check_policy(policy: object, position: int) -> Policy:
    if isinstance(policy, type):
        raise TypeError(
            f"compose() argument {position} must be a policy, got the class "
            f"{policy.__name__}: call it to make one ({policy.__name__}(...))"
        )
    # Not isinstance(policy, Policy): a runtime-checkable Protocol costs about
    # 2 us per check, and profiles compose a pipeline per request.
    if callable(getattr(policy, "bind", None)):
        return policy  # type: ignore[return-value]
    raise TypeError(
        f"compose() argument {position} must be a policy (an object with "
        f"bind(inner, shape)), got {type(policy).__name__}: {policy!r}"
    )


@final
class Pipeline:
    """
    Policies applied in order, the first outermost, as one wrapper.

    ``compose(a, b, c)`` behaves as ``@a @b @c``. A pipeline is immutable and
    safe to share between threads and tasks; it binds its policies once per
    shape of callable and reuses the result for every call.
    """

    __slots__ = ("__weakref__", "_runners", "policies")

    policies: tuple[Policy, ...]

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self.policies = policies
        self._runners: dict[Shape, Runner] = {}

    def __repr__(self) -> str:
        # A classifier shared by several policies (Retry and a breaker on
        # rs.transient) is shown once, where it first appears.
        shown: dict[str, str] = {}
        parts = []
        for policy in self.policies:
            text = repr(policy)
            on = getattr(policy, "on", None)
            if isinstance(on, ErrorClassifier):
                full = repr(on)
                if full in shown:
                    text = text.replace(full, f"<the same as {shown[full]}'s>")
                else:
                    shown[full] = type(policy).__name__
            parts.append(text)
        return f"compose({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pipeline):
            return self.policies == other.policies
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.policies)

    def __reduce__(self) -> tuple[Any, ...]:
        # The runner cache holds closures, which neither pickle nor need to:
        # a copy binds its own on first use.
        return (Pipeline, (self.policies,))

    def runner(self, shape: Shape) -> Runner:
        """Return the runner for callables of *shape*, binding the policies on first use."""
        try:
            return self._runners[shape]
        except KeyError:
            pass
        run = CALL
        for policy in reversed(self.policies):
            run = policy.bind(run, shape)
        # A race binds twice and keeps one: both results are equivalent.
        return self._runners.setdefault(shape, run)

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Decorate *fn*: functions, methods, coroutines and (async) generators."""
        from ._decorate import decorate  # imports this module: import it on use (decoration only)

        return decorate(self, fn)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """
        Run ``fn(*args, **kwargs)`` once under the pipeline (sync functions).

        Raises:
            TypeError: If *fn* is not callable, or is a coroutine or (async)
                generator function (``acall`` runs the first; decorate the others).
        """
        code = getattr(fn, "__code__", None)
        if code is None or code.co_flags & _NOT_SYNC:  # no code of its own, or not sync
            check_sync(self, fn)
        run = self._runners.get(_SYNC) or self.runner(_SYNC)
        return run(fn, args, kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """
        Run ``await fn(*args, **kwargs)`` once under the pipeline (coroutine functions).

        *fn* may be any callable returning an awaitable (``lambda: fetch(url)``).

        Raises:
            TypeError: If *fn* is not callable, is an (async) generator function,
                or returns what cannot be awaited (once run, and counted by no
                policy: ``call`` runs sync functions).
        """
        code = getattr(fn, "__code__", None)
        flags = 0 if code is None else code.co_flags  # 0: no code of its own
        if not flags & _COROUTINE:
            fn = awaitable_only(self, fn, flags)
        run = self._runners.get(_ASYNC) or self.runner(_ASYNC)
        try:
            return await run(fn, args, kwargs)  # type: ignore[no-any-return]
        except NotAwaitable as exc:
            raise exc.args[0] from None

    def explain(self) -> str:
        """
        Return a readable, multi-line description of what a call through the pipeline does.

        The policies in order, outermost first, each as its ``describe()``
        says (what is retried and what trips, per the classifier's rules; the
        backoff's sleeps; the timeouts); then the worst case of one call: how
        many times the function runs, how long the policies sleep, and an
        upper bound on the total time, with and without the waits a server
        may ask for (``Retry-After``). A policy without ``describe()`` is shown
        by its repr. Never shows secrets: policies hold none.

        Returns:
            Plain text, lines separated by ``"\\n"``, no trailing newline.
        """
        from ._explain import explain  # the renderer: loaded when first used

        return explain(self.policies)

    def timeline(self) -> str:
        """
        Return the worst case of one call drawn as a timeline (the end of `explain`).

        One row per attempt and per wait, along one time axis: each attempt
        runs to the limit of the policies inside the Retry (its timeout), each
        wait to its longest, with its jitter marked; the deadline of the
        policies outside the Retry cuts the schedule where Retry would give
        up. ASCII, at most 78 columns.

        Returns:
            Plain text, lines separated by ``"\\n"``; empty when no policy
            waits between runs (no Retry, or one whose sleeps are not known).
        """
        from ._explain import timeline

        return "\n".join(timeline(self.policies))

    def worst_case(self, call: float | None = None, *, retry_after: bool = True) -> float | None:
        """
        Return an upper bound, in seconds, on a call through the pipeline.

        Each policy's `Description` is applied from the innermost outwards:
        Retry multiplies the time of what it wraps by its attempts and adds its
        sleeps, a Timeout caps it.

        Args:
            call: Seconds, at most, that one run of the function takes;
                `None` (default): unknown, so that only the timeouts bound it.
                ``0.0`` gives the time spent sleeping.
            retry_after: Whether to count the waits a server may ask for
                (``Retry-After``, up to each Retry's ``max_retry_after``).
                Default: `True`.

        Returns:
            The bound in seconds, or `None` when nothing bounds the call.
        """
        from ._explain import worst_case

        return worst_case(self.policies, call, retry_after=retry_after)


Pipeline.__module__ = "resilience"


def compose(*policies: Policy | Pipeline) -> Pipeline:
    """
    Compose *policies* into one `Pipeline`; the first is outermost.

    ``compose(retry, breaker, timeout)`` behaves exactly as stacking
    ``@retry @breaker @timeout``, with a single wrapper. Nested pipelines are
    flattened.

    Raises:
        TypeError: If an argument is not a policy or pipeline.
    """
    flat: list[Policy] = []
    for i, policy in enumerate(policies):
        if isinstance(policy, Pipeline):
            flat.extend(policy.policies)
        else:
            flat.append(_check_policy(policy, i))
    return Pipeline(tuple(flat))


_BINDERS = {shape: f"_bind_{shape.name.lower()}" for shape in Shape}


def pipeline_field() -> Any:
    """An attrs field holding the policy's own one-policy `Pipeline` (for `PolicyMixin`)."""
    return attrs.field(
        init=False,
        repr=False,
        eq=False,
        hash=False,
        default=attrs.Factory(lambda self: Pipeline((self,)), takes_self=True),
    )


def undecorated(policy: str, example: str, fn: object) -> TypeError:
    """
    The TypeError for a policy class used as a decorator without its arguments.

    Args:
        policy: The class, as users write it (``"resilience.Retry"``).
        example: Its arguments in the advice (``"on=..."``).
        fn: What it was given (the decorated function).
    """
    return TypeError(
        f"{policy} was given the function {getattr(fn, '__name__', None) or target_name(fn)}: "
        "to decorate, make the policy "
        f"first, as in @{policy}({example}), not @{policy}"
    )


_POSITIONAL: set[type] = set()
"""Policy classes whose ``__init__`` takes positional arguments (`Timeout`): not looked at again."""


def _positional(cls: type, args: tuple[Any, ...]) -> None:
    """Raise the TypeError for *args* given to *cls*, unless its ``__init__`` takes some."""
    code = getattr(cls.__init__, "__code__", None)  # type: ignore[misc]
    if code is None or code.co_argcount > 1 or code.co_flags & inspect.CO_VARARGS:
        _POSITIONAL.add(cls)
        return  # its own checks judge the positional arguments
    defaults = cls.__init__.__kwdefaults__ or {}  # type: ignore[misc]
    names = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    required = [n for n in names if defaults.get(n, REQUIRED["default"]) is REQUIRED["default"]]
    example = ", ".join(f"{name}=..." for name in required) or "..."
    policy = (
        cls.__qualname__ if cls.__module__ == "__main__" else f"{cls.__module__}.{cls.__qualname__}"
    )
    if len(args) == 1 and isinstance(args[0], types.FunctionType | types.MethodType):
        raise undecorated(policy, example, args[0])
    raise TypeError(
        f"{policy} takes keyword arguments only, as in {policy}({example}); got "
        f"{len(args)} positional argument{'' if len(args) == 1 else 's'} "
        f"({', '.join(target_name(arg) for arg in args)})"
    )


class PolicyMixin:
    """
    Gives a policy the three surfaces of a one-policy pipeline: decorator, `call`, `acall`.

    A class with ``__slots__`` (an attrs class, by default) defines
    ``_pipeline = pipeline_field()`` among its fields; any other class gets
    its pipeline made on first use.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # Keyword-only policies (all of ours but Timeout) given a positional
        # argument: most often ``@Retry`` without parentheses. Copies and
        # unpickling come through here without arguments.
        if args and cls not in _POSITIONAL:
            _positional(cls, args)
        return super().__new__(cls)

    @property
    def _pipeline(self) -> Pipeline:
        try:
            cache = self.__dict__
        except AttributeError:
            raise TypeError(
                f"{type(self).__name__} has __slots__ and no __dict__: give it the field "
                "`_pipeline = resilience.engine.pipeline_field()` (attrs), or a `_pipeline` "
                "slot set to resilience.Pipeline((self,))"
            ) from None
        pipeline = cache.get("_resilience_pipeline")
        if pipeline is None:
            pipeline = cache.setdefault("_resilience_pipeline", Pipeline((self,)))
        return pipeline  # type: ignore[no-any-return]

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner applying this policy around *inner* (see `resilience.Policy`).

        Dispatches to the policy's ``_bind_sync``, ``_bind_async``, ``_bind_gen``
        or ``_bind_agen``, once per pipeline and shape.
        """
        binder: Callable[[Runner], Runner] = getattr(self, _BINDERS[shape])
        return binder(inner)

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]:
        """Decorate *fn*: functions, methods, coroutines and (async) generators."""
        from ._decorate import decorate  # imports this module: import it on use (decoration only)

        return decorate(self._pipeline, fn)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """
        Run ``fn(*args, **kwargs)`` once under this policy (sync functions).

        Raises:
            TypeError: If *fn* is not callable, or is a coroutine or (async)
                generator function (``acall`` runs the first; decorate the others).
        """
        # Pipeline.call inlined: one frame and one packing of the arguments less.
        code = getattr(fn, "__code__", None)
        if code is None or code.co_flags & _NOT_SYNC:  # no code of its own, or not sync
            check_sync(self, fn)
        pipeline = self._pipeline
        run = pipeline._runners.get(_SYNC) or pipeline.runner(_SYNC)
        return run(fn, args, kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """
        Run ``await fn(*args, **kwargs)`` once under this policy (coroutine functions).

        *fn* may be any callable returning an awaitable (``lambda: fetch(url)``).

        Raises:
            TypeError: If *fn* is not callable, is an (async) generator function,
                or returns what cannot be awaited (once run, and counted by no
                policy: ``call`` runs sync functions).
        """
        code = getattr(fn, "__code__", None)
        flags = 0 if code is None else code.co_flags  # 0: no code of its own
        if not flags & _COROUTINE:
            fn = awaitable_only(self, fn, flags)
        pipeline = self._pipeline
        run = pipeline._runners.get(_ASYNC) or pipeline.runner(_ASYNC)
        try:
            return await run(fn, args, kwargs)  # type: ignore[no-any-return]
        except NotAwaitable as exc:
            raise exc.args[0] from None

    def explain(self) -> str:
        """Return a readable description of this policy and its worst case (`Pipeline.explain`)."""
        return self._pipeline.explain()

    def timeline(self) -> str:
        """Return the worst case of a call through this policy, drawn (`Pipeline.timeline`)."""
        return self._pipeline.timeline()
