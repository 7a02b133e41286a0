"""
Fallback: answer with something else when a call fails in a way *on* handles.

The rule is the classifier's ``retry`` verdict, the same judgement Retry
makes: a raised exception (or, with a classifier that handles results, a
returned result) whose verdict has ``retry`` is replaced by what ``to`` gives.
What is worth another try is worth a fallback; anything else propagates.

The success path is the runner's closure and a ``try``: nothing is classified
unless the classifier handles results, nothing is allocated. The fallbacks run
inside the ``except`` block of the failure they replace, so that a fallback's
own exception chains it (``__context__``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import Any, NoReturn, final

import attrs

from ._classify import REQUIRED, ErrorClassifier, Verdict, to_classifier
from ._events import FallbackUsed, Hook, emit
from ._explain import Description, condition
from ._pipeline import CALL, PolicyMixin, Runner, Shape, pipeline_field, target_name
from ._streams import astep, relay
from ._validate import check_name, to_hooks

__all__ = ["Fallback"]


def _to_fallbacks(value: object) -> tuple[Any, ...]:
    """``to=``: a list is the fallbacks in order; anything else is the one fallback."""
    if isinstance(value, list):
        if not value:
            raise ValueError(
                "to must name at least one fallback, got []: to fall back to an empty "
                "list, write to=[[]] or to=lambda exc, *args, **kwargs: []"
            )
        return tuple(value)
    return (value,)


def _show(target: object) -> str:
    """A fallback, in a few words, for repr and explain."""
    if callable(target):
        name = getattr(target, "__qualname__", None)
        if isinstance(name, str):
            return name.rpartition("<locals>.")[2]
        return repr(target)
    text = repr(target)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _no_awaitable(value: object, target: object, fn: object) -> NoReturn:
    if inspect.iscoroutine(value):
        value.close()  # never awaited: say so with this TypeError, not a RuntimeWarning
    raise TypeError(
        f"fallback {_show(target)} returned an awaitable ({type(value).__name__}) for "
        f"{target_name(fn)}, which is not a coroutine function: a sync call needs a "
        "sync fallback"
    )


def _items(values: Iterable[Any]) -> Generator[Any, Any, Any]:
    return (yield from values)


async def _aitems(values: Any) -> AsyncGenerator[Any, Any]:
    if hasattr(values, "__aiter__"):
        async for value in values:
            yield value
    else:
        for value in values:
            yield value


def _as_stream(value: object, target: object, fn: object) -> Generator[Any, Any, Any]:
    if isinstance(value, Generator):
        return value
    if inspect.isawaitable(value) or hasattr(value, "__aiter__"):
        if inspect.iscoroutine(value):
            value.close()
        raise TypeError(
            f"fallback {_show(target)} gave {type(value).__name__} for the generator "
            f"function {target_name(fn)}: a sync stream falls back to an iterable"
        )
    if not isinstance(value, Iterable):
        raise TypeError(
            f"fallback {_show(target)} gave {type(value).__name__} for the generator "
            f"function {target_name(fn)}: a stream falls back to an iterable of items"
        )
    return _items(value)


def _as_astream(value: object, target: object, fn: object) -> AsyncGenerator[Any, Any]:
    if isinstance(value, AsyncGenerator):
        return value
    if not (hasattr(value, "__aiter__") or isinstance(value, Iterable)):
        raise TypeError(
            f"fallback {_show(target)} gave {type(value).__name__} for the async generator "
            f"function {target_name(fn)}: a stream falls back to an async iterable or an "
            "iterable of items"
        )
    return _aitems(value)


@final
@attrs.frozen(kw_only=True, repr=False)
class Fallback(PolicyMixin):
    """
    Answer with what *to* gives when the call fails in a way *on* handles.

    An outcome is handled when the classifier's verdict has ``retry``: for an
    exception type (or tuple of them) given as *on*, any instance; for
    `resilience.transient`, what it would retry. A `RejectedError` (an open
    circuit, a full bulkhead) is handled when *on* names it, as in
    ``on=(rs.RejectedError, ConnectionError)``. With a classifier whose rules
    match results (``Rule(status=503)``), a refused *result* is replaced too.

    *to* is a plain value (returned as is) or a callable, called as
    ``to(failure, *args, **kwargs)``: the failure first (the exception, or the
    refused result), then the call's own arguments (a method's instance
    included). A list tries its fallbacks in order: when one raises an
    exception that *on* handles (or returns a result it refuses), the next is
    given that new failure; the last one's failure propagates, chained to the
    ones before (``__context__``). For a coroutine function a fallback may be
    sync or async (an awaitable it returns is awaited); for a plain function
    it must be sync. For (async) generator functions, a fallback applies only
    before the first item reached the caller, and gives an iterable (or, for
    async ones, an async iterable) whose items are yielded instead; after the
    first item, failures propagate unchanged.

    A `FallbackUsed` event tells when a fallback answered. Cancellation,
    `KeyboardInterrupt`, `SystemExit` and `GeneratorExit` are never replaced.
    A `Fallback` is configuration: immutable and safe to share. Use it as a
    decorator, through `call` / `acall`, or in `compose`; not around a block
    (``with fallback:`` is a `TypeError`: a block returns no value to replace).

    Args:
        on: What to replace: an `ErrorClassifier`, an exception type or tuple
            of types, a `Rule`, or a predicate over the exception. Required.
        to: A value, a callable ``(failure, *args, **kwargs)``, or a non-empty
            list of them, tried in order. Required. To fall back to a list
            value, wrap it: ``to=[["cached"]]``. A callable is always called:
            to return a callable, return it from a lambda.
        name: A label for events. Default: `None`.
        hooks: Callables receiving this policy's events, before the global hooks.

    Raises:
        TypeError: On an ``on`` that is not a classifier (or missing), a
            missing ``to``, a bad ``name`` or ``hooks``.
        ValueError: On ``to=[]``.
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier, **REQUIRED)
    to: tuple[Any, ...] = attrs.field(converter=_to_fallbacks)
    name: str | None = attrs.field(default=None, validator=check_name)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    _pipeline: Any = pipeline_field()

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "Fallback is not a context manager: a `with` body returns no value to "
            "replace. Decorate a function, or use fallback.call(fn, ...) / "
            "await fallback.acall(fn, ...)."
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None

    async def __aenter__(self) -> NoReturn:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None

    def __repr__(self) -> str:
        to = _show(self.to[0]) if len(self.to) == 1 else f"[{', '.join(map(_show, self.to))}]"
        parts = [f"on={self.on!r}", f"to={to}"]
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        return f"Fallback({', '.join(parts)})"

    def describe(self) -> Description:
        """
        Return what this Fallback does, for `resilience.Pipeline.explain`.

        What its classifier hands to the fallbacks (rule by rule) and the
        fallbacks in order. The time a fallback callable takes is not known,
        so with one the worst case has no bound of its own.
        """
        label = f"Fallback {self.name!r}" if self.name is not None else "Fallback"
        n = len(self.to)
        title = f"{label}: {'one fallback' if n == 1 else f'{n} fallbacks, in order'}"
        rows = [
            (condition(rule), "falls back" if rule.retry else "propagates", rule.kind or "")
            for rule in self.on.rules
        ]
        rows.append(("anything else", "propagates", ""))
        width = max(len(row[0]) for row in rows)
        middle = max(len(row[1]) for row in rows)
        details = ["falls back on (first matching rule decides):"]
        details += [f"  {a:<{width}}  {b:<{middle}}  {c}".rstrip() for a, b, c in rows]
        if self.on.handles_results:
            details.append(
                "  (rules without exception= also match returned results, such as a 503 response)"
            )
        details.append("to:")
        for index, target in enumerate(self.to, 1):
            what = (
                f"{_show(target)}(failure, *args, **kwargs)"
                if callable(target)
                else (f"the value {_show(target)}")
            )
            details.append(f"  {index}. {what}")
        details.append("streams fall back only before their first item")
        timed = any(callable(target) for target in self.to)
        if timed:
            details.append("the time a fallback callable takes is not bounded here")
        return Description(title=title, details=details, sleeps=None if timed else 0.0)

    # --- the fallbacks, in order ------------------------------------------------------
    #
    # Each is tried inside the `except` block of the failure it replaces (by
    # recursion), so that its own exception chains that failure.

    def _handled(self, outcome: object) -> bool:
        return self.on.classify(outcome).retry

    def _used(self, fn: object, failure: object, verdict: Verdict) -> None:
        emit(
            self.hooks,
            FallbackUsed,
            name=self.name,
            target=target_name(fn),
            error=failure if isinstance(failure, BaseException) else None,
            kind=verdict.kind,
        )

    def _sync(
        self, index: int, failure: object, fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        target = self.to[index]
        if not callable(target):
            return target
        last = index + 1 == len(self.to)
        try:
            value = target(failure, *args, **kwargs)
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return self._sync(index + 1, exc, fn, args, kwargs)
        if inspect.isawaitable(value):
            _no_awaitable(value, target, fn)
        if not last and self.on.handles_results and self._handled(value):
            return self._sync(index + 1, value, fn, args, kwargs)
        return value

    async def _async(
        self, index: int, failure: object, fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        target = self.to[index]
        if not callable(target):
            return target
        last = index + 1 == len(self.to)
        try:
            value = target(failure, *args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return await self._async(index + 1, exc, fn, args, kwargs)
        if not last and self.on.handles_results and self._handled(value):
            return await self._async(index + 1, value, fn, args, kwargs)
        return value

    def _start_gen(
        self, index: int, failure: object, fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Generator[Any, Any, Any] | None, Any]:
        """Start the fallback streams in order: (the one that gave an item, the item), or
        (None, its return value) for one that ended at once."""
        target = self.to[index]
        last = index + 1 == len(self.to)
        try:
            value = target(failure, *args, **kwargs) if callable(target) else target
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return self._start_gen(index + 1, exc, fn, args, kwargs)
        stream = _as_stream(value, target, fn)
        try:
            return stream, next(stream)
        except StopIteration as stop:
            return None, stop.value
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return self._start_gen(index + 1, exc, fn, args, kwargs)

    async def _start_agen(
        self, index: int, failure: object, fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[AsyncGenerator[Any, Any] | None, Any]:
        target = self.to[index]
        last = index + 1 == len(self.to)
        try:
            value = target(failure, *args, **kwargs) if callable(target) else target
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return await self._start_agen(index + 1, exc, fn, args, kwargs)
        stream = _as_astream(value, target, fn)
        try:
            return stream, await stream.__anext__()
        except StopAsyncIteration:
            return None, None
        except Exception as exc:
            if last or not self._handled(exc):
                raise
            return await self._start_agen(index + 1, exc, fn, args, kwargs)

    # --- binding (the policy protocol) -------------------------------------------------

    def _check_sync_targets(self) -> None:
        for target in self.to:
            if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
                raise TypeError(
                    f"to: fallback {_show(target)} is async, and the function is not a "
                    "coroutine function: a sync call needs a sync fallback"
                )

    def closure(self, fn: Callable[..., Any], shape: Shape, /) -> Callable[..., Any] | None:
        """
        Return the one-frame wrapper of *fn* the decorator uses when this policy is alone.

        The call and a ``try``, nothing else, for functions and coroutine
        functions whose results need no judging; `None` otherwise (the
        decorator then wraps the bound runner). Behaves as ``bind(CALL, shape)``.
        """
        if self.on.handles_results or shape is Shape.GEN or shape is Shape.AGEN:
            return None
        classify = self.on.classify
        used = self._used
        if shape is Shape.SYNC:
            self._check_sync_targets()
            answer = self._sync

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    verdict = classify(exc)
                    if not verdict.retry:
                        raise
                    value = answer(0, exc, fn, args, kwargs)
                    used(fn, exc, verdict)
                    return value

            return wrapper
        aanswer = self._async

        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                verdict = classify(exc)
                if not verdict.retry:
                    raise
                value = await aanswer(0, exc, fn, args, kwargs)
                used(fn, exc, verdict)
                return value

        return awrapper

    def _bind_sync(self, inner: Runner) -> Runner:
        self._check_sync_targets()
        classify = self.on.classify
        direct = inner is CALL
        answer = self._sync
        used = self._used
        results = self.on.handles_results

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except Exception as exc:
                verdict = classify(exc)
                if not verdict.retry:
                    raise
                value = answer(0, exc, fn, args, kwargs)
                used(fn, exc, verdict)
                return value
            if not results:
                return result
            verdict = classify(result)
            if not verdict.retry:
                return result
            value = answer(0, result, fn, args, kwargs)
            used(fn, result, verdict)
            return value

        return run

    def _bind_async(self, inner: Runner) -> Runner:
        classify = self.on.classify
        direct = inner is CALL
        answer = self._async
        used = self._used
        results = self.on.handles_results

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except Exception as exc:
                verdict = classify(exc)
                if not verdict.retry:
                    raise
                value = await answer(0, exc, fn, args, kwargs)
                used(fn, exc, verdict)
                return value
            if not results:
                return result
            verdict = classify(result)
            if not verdict.retry:
                return result
            value = await answer(0, result, fn, args, kwargs)
            used(fn, result, verdict)
            return value

        return run

    # --- streams ---------------------------------------------------------------------
    #
    # Only the first item is guarded: once an item reached the caller, a
    # fallback would splice another answer onto part of this one. Items and
    # return values are never classified.

    def _bind_gen(self, inner: Runner) -> Runner:
        self._check_sync_targets()
        classify = self.on.classify
        direct = inner is CALL
        start = self._start_gen
        used = self._used

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            try:
                item = next(it)
            except StopIteration as stop:
                return stop.value
            except Exception as exc:
                verdict = classify(exc)
                if not verdict.retry:
                    raise
                stream, item = start(0, exc, fn, args, kwargs)
                used(fn, exc, verdict)
                if stream is None:
                    return item
                it = stream
            return (yield from relay(it, item))

        return run

    def _bind_agen(self, inner: Runner) -> Runner:
        classify = self.on.classify
        direct = inner is CALL
        start = self._start_agen
        used = self._used

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            try:
                item = await it.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                verdict = classify(exc)
                if not verdict.retry:
                    raise
                stream, item = await start(0, exc, fn, args, kwargs)
                used(fn, exc, verdict)
                if stream is None:
                    return
                it = stream
            try:
                while True:
                    sent: Any = None
                    thrown: BaseException | None = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
                    try:
                        item = await astep(it, sent, thrown)
                    except StopAsyncIteration:
                        return
            finally:
                await it.aclose()

        return run


Fallback.__module__ = "resilience"
