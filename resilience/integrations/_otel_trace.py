"""
OpenTelemetry traces: every policy's events as span events, and optional spans per call or attempt.

`OpenTelemetryTracing` is a `resilience.Hook`: installed (``rs.add_hook``), it
adds each event a policy emits (a retry scheduled, a give-up, a rejection, a
timeout, a fallback used, a circuit transition, ...) to the span current where
it happens, as a span event named ``resilience.<event>`` (``resilience.
retry_scheduled``) with the policy's name and the event's fields as attributes.
Events exist on failure paths only, and the hook returns after one look at
the current span when no span records: a success costs nothing, a failure
with no trace one context-variable read.

`OpenTelemetryTracing.spans` returns a policy that opens a child span around
each call it wraps: placed inside a `resilience.Retry`, one span per attempt.
Off by default: nothing opens spans until you compose it.

Attributes are the policy's name (``resilience.policy``), the event's class
(``resilience.event``), and its fields as ``resilience.<field>`` (numbers,
text such as a verdict's ``kind``, ``"timeout"`` for a timeout, a rejection's
``reason``); an exception
is reduced to its type (``resilience.error.type``): never a message, a URL,
a header or an argument.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Final, final

import attrs
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

import resilience as rs
from resilience import Description, Event, TimeoutExpired
from resilience.engine import (
    CALL,
    PolicyMixin,
    astep,
    event_fields,
    pipeline_field,
    step,
    target_name,
)

__all__ = ["OpenTelemetryTracing", "TracingSpans"]

Runner = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]

POLICY: Final = "resilience.policy"
EVENT: Final = "resilience.event"
ERROR_TYPE: Final = "resilience.error.type"
TARGET: Final = "resilience.target"
KIND: Final = "resilience.kind"

_get_current_span = trace.get_current_span
_NAMES: dict[type[Event], str] = {}


def _event_name(cls: type[Event]) -> str:
    """``RetryScheduled`` -> ``resilience.retry_scheduled`` (cached per class)."""
    name = _NAMES.get(cls)
    if name is None:
        name = _NAMES[cls] = "resilience." + re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    return name


def _attributes(event: Event) -> dict[str, Any]:
    """The event as span-event attributes: plain values only, exceptions by type."""
    out: dict[str, Any] = {EVENT: type(event).__name__, POLICY: event.name or "default"}
    for key in event_fields(type(event)):
        if key == "name":
            continue
        value = getattr(event, key)
        if value is None:
            continue
        if isinstance(value, BaseException):
            out[ERROR_TYPE] = type(value).__qualname__
        elif isinstance(value, enum.Enum):
            out[f"resilience.{key}"] = str(value.value)
        elif isinstance(value, (bool, int, float, str)):
            out[f"resilience.{key}"] = value
    if isinstance(event, TimeoutExpired):
        out[KIND] = "timeout"  # the kind the classifiers give a timeout
    return out


@final
class OpenTelemetryTracing:
    """
    Add every policy's events to the current span, as span events; make per-call spans.

    A `resilience.Hook`: ``rs.add_hook(OpenTelemetryTracing())`` (every
    policy) or ``hooks=[tracing]`` on one policy. When an event happens
    while a span records, it becomes a span event named after it
    (``resilience.retry_scheduled``, ``resilience.call_rejected``,
    ``resilience.timeout_expired``, ``resilience.fallback_used``,
    ``resilience.circuit_opened``, ...) with the policy's name
    (``resilience.policy``), the event's class and fields, and an
    exception's type (never its message). With no span recording it does
    nothing. See `spans` for a child span per call or attempt.

    Args:
        tracer_provider: Where `spans` gets its tracer. Default: the global
            provider (`opentelemetry.trace.get_tracer_provider`). The tracer is
            named ``"resilience"``, versioned with the library.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_tracer",)

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("resilience", rs.__version__, tracer_provider)

    def __repr__(self) -> str:
        return "OpenTelemetryTracing()"

    def __call__(self, event: Event, /) -> None:
        """Add *event* to the current span if it records (the hook)."""
        span = _get_current_span()
        if span.is_recording():
            span.add_event(_event_name(type(event)), _attributes(event))

    def spans(self, name: str = "resilience.attempt") -> TracingSpans:
        """
        Return a policy opening a child span, named *name*, around each call it wraps.

        Compose it inside a `resilience.Retry` for one span per attempt
        (``rs.compose(retry, tracing.spans(), breaker)``), outermost for one
        span per call. A failure sets the span's status to ERROR with the
        exception's type; a cancellation ends it with
        ``resilience.outcome="cancelled"``. The events of the policies inside
        it land on its span.

        Args:
            name: The span's name. Default: ``"resilience.attempt"``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {type(name).__name__}: {name!r}")
        return TracingSpans(tracer=self._tracer, name=name)


def _current(span: Span) -> Any:
    """Make *span* current for a block, recording nothing of what the block raises."""
    return trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    )


def _failed(span: Span, error: BaseException) -> None:
    if isinstance(error, Exception):
        kind = type(error).__qualname__
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))
    else:
        span.set_attribute("resilience.outcome", "cancelled")


@final
@attrs.frozen(kw_only=True, repr=False)
class TracingSpans(PolicyMixin):
    """
    A child span around each call: what `OpenTelemetryTracing.spans` returns.

    For functions and coroutine functions the span is current while the
    call runs; for (async) generator functions it spans the stream and is
    current while each item is produced, never while the caller holds one.

    .. versionadded:: 0.1.0
    """

    tracer: trace.Tracer = attrs.field(eq=False)
    name: str
    _pipeline: Any = pipeline_field()

    def __repr__(self) -> str:
        return f"TracingSpans(name={self.name!r})"

    def describe(self) -> Description:
        """Return what this policy does, for `resilience.Pipeline.explain`."""
        return Description(
            title=f"TracingSpans: a span {self.name!r} around each call",
            details=["adds no attempts and no waits; failures mark the span ERROR"],
        )

    def _bind_sync(self, inner: Runner) -> Runner:
        start, name, direct = self.tracer.start_as_current_span, self.name, inner is CALL

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            with start(
                name,
                attributes={TARGET: target_name(fn)},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                except BaseException as exc:
                    _failed(span, exc)
                    raise

        return run

    def _bind_async(self, inner: Runner) -> Runner:
        start, name, direct = self.tracer.start_as_current_span, self.name, inner is CALL

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            with start(
                name,
                attributes={TARGET: target_name(fn)},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
                except BaseException as exc:
                    _failed(span, exc)
                    raise

        return run

    def _bind_gen(self, inner: Runner) -> Runner:
        tracer, name, direct = self.tracer, self.name, inner is CALL

        def run(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Generator[Any, Any, Any]:
            span = tracer.start_span(name, attributes={TARGET: target_name(fn)})
            try:
                with _current(span):
                    it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    try:
                        with _current(span):
                            item = step(it, sent, thrown)
                    except StopIteration as stop:
                        return stop.value
                    sent = thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        it.close()
                        raise
                    except BaseException as exc:  # throw() from the consumer: forward it
                        thrown = exc
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                span.end()

        return run

    def _bind_agen(self, inner: Runner) -> Runner:
        tracer, name, direct = self.tracer, self.name, inner is CALL

        async def run(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> AsyncGenerator[Any, Any]:
            span = tracer.start_span(name, attributes={TARGET: target_name(fn)})
            try:
                with _current(span):
                    it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    try:
                        with _current(span):
                            item = await astep(it, sent, thrown)
                    except StopAsyncIteration:
                        return
                    sent = thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await it.aclose()
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                span.end()

        return run
