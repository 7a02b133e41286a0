"""
The decorator: wraps a function, method, coroutine or (async) generator in a pipeline.

`decorate` detects the shape once, binds the pipeline's runner for it, and
wraps the function in the cheapest wrapper that keeps its kind (a closure, or a
`wrapt.FunctionWrapper` for other callables). It marks the wrapper so that
stacked policy decorators fuse into one pipeline and one wrapper.
`Pipeline.__call__` and `PolicyMixin.__call__` call it.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, TypeVar, final

import wrapt
from typing_extensions import ParamSpec

from ._pipeline import Pipeline, Runner, Shape, shape_of
from ._streams import astep

__all__ = ["decorate"]

P = ParamSpec("P")
R = TypeVar("R")

_MARK = "__resilience__"
# On a wrapt proxy, every attribute write goes through to the wrapped object
# (which may be frozen, slotted, a builtin, or simply not ours to change),
# except names starting with "_self_", which wrapt keeps on the proxy itself.
_PROXY_MARK = "_self_resilience"
# What a closure copies from the function it wraps: functools' list, and the
# defaults, which code and tools read (a wrapper taking *args, **kwargs never
# uses them itself: setting them changes no call).
_ASSIGNED = (*functools.WRAPPER_ASSIGNMENTS, "__defaults__", "__kwdefaults__")


@final
class _Info:
    """What a decorated function remembers, so stacked decorators fuse into one wrapper."""

    __slots__ = ("fn", "pipeline", "wrapper")

    def __init__(self, pipeline: Pipeline, fn: Callable[..., Any], wrapper: object) -> None:
        self.pipeline = pipeline
        self.fn = fn
        self.wrapper = wrapper


def _fused(pipeline: Pipeline, fn: Callable[..., Any]) -> tuple[Pipeline, Callable[..., Any]]:
    info = getattr(fn, _PROXY_MARK if isinstance(fn, wrapt.FunctionWrapper) else _MARK, None)
    # Only our own wrapper, not a user's functools.wraps copy of its __dict__
    # nor a user's proxy, which reads missing attributes from what it wraps.
    if isinstance(info, _Info) and info.wrapper is fn:
        return Pipeline(pipeline.policies + info.pipeline.policies), info.fn
    return pipeline, fn


def decorate(pipeline: Pipeline, fn: Callable[P, R]) -> Callable[P, R]:
    """
    Wrap *fn* so that every call runs through *pipeline*.

    The shape is detected here, once. Plain functions get a plain closure
    (functions are descriptors already, so methods bind for free, and a closure
    is the cheapest wrapper Python has); `classmethod` and `staticmethod`
    objects are re-wrapped in their own kind; other callables (callable
    objects, partials, builtins such as ``operator.itemgetter``, classes) get a
    `wrapt.FunctionWrapper`, which keeps their descriptor behaviour and is
    marked on the proxy itself: the wrapped object is never modified. Stacked
    policy decorators fuse into one wrapper.
    """
    if isinstance(fn, classmethod | staticmethod):
        return type(fn)(decorate(pipeline, fn.__func__))
    if not callable(fn):
        raise TypeError(f"a policy decorates callables, got {type(fn).__name__}: {fn!r}")
    pipeline, fn = _fused(pipeline, fn)
    shape = shape_of(fn)
    wrapper: Any
    if isinstance(fn, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        # A policy's own closure needs no runner: none is bound (nor kept by the pipeline).
        wrapper = _own_closure(pipeline, fn, shape) or _closure(shape, pipeline.runner(shape), fn)
        functools.update_wrapper(wrapper, fn, assigned=_ASSIGNED)
        setattr(wrapper, _MARK, _Info(pipeline, fn, wrapper))
    else:
        wrapper = wrapt.FunctionWrapper(fn, _adapter(shape, pipeline.runner(shape)))
        setattr(wrapper, _PROXY_MARK, _Info(pipeline, fn, wrapper))
    return wrapper  # type: ignore[no-any-return]


def _own_closure(pipeline: Pipeline, fn: Callable[..., Any], shape: Shape) -> Any:
    """
    The wrapper a lone policy writes for *fn* itself (its optional ``closure``), or `None`.

    A wrapper that calls a runner is two frames per call; a policy that can
    apply itself to *fn* in one (`Fallback`: the call and a ``try``) offers
    ``closure(fn, shape)``. Only for a pipeline of that one policy: stacked
    policies fuse into one runner instead.
    """
    if len(pipeline.policies) != 1:
        return None
    make = getattr(pipeline.policies[0], "closure", None)
    return None if make is None else make(fn, shape)


def _closure(shape: Shape, run: Runner, fn: Callable[..., Any]) -> Callable[..., Any]:
    # Each shape keeps its kind, so that inspect (and a policy stacked above)
    # still sees a coroutine or generator function.
    if shape is Shape.SYNC:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return run(fn, args, kwargs)

    elif shape is Shape.ASYNC:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return await run(fn, args, kwargs)

    elif shape is Shape.GEN:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return (yield from run(fn, args, kwargs))

    else:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            # An async generator cannot ``yield from``: delegate by hand, forwarding
            # asend/athrow and closing the inner stream when the caller stops.
            agen = run(fn, args, kwargs)
            try:
                value = await agen.__anext__()
                while True:
                    sent: Any = None
                    thrown: BaseException | None = None
                    try:
                        sent = yield value
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the caller
                        thrown = exc
                    value = await astep(agen, sent, thrown)
            except StopAsyncIteration:
                return
            finally:
                await agen.aclose()

    return wrapper


def _adapter(shape: Shape, run: Runner) -> Callable[..., Any]:
    if shape is Shape.ASYNC:

        async def async_adapter(
            wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: Any
        ) -> Any:
            return await run(wrapped, args, kwargs)

        return async_adapter

    def adapter(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        return run(wrapped, args, kwargs)

    return adapter
