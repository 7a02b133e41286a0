"""
OpenTelemetry metrics: the `MetricsCollector` model, emitted on an OpenTelemetry `Meter`.

`OpenTelemetryMetrics` is a hook and a policy exactly like
`resilience.MetricsCollector` (same drivers, same classification, same labels);
instead of keeping counts it reports them to instruments with stable names.
Every call a bound object observes is one ``resilience.call.duration``
measurement (rejected and cancelled calls included, told apart by
``resilience.outcome``): the histogram's count is the number of calls, as with
OpenTelemetry's ``http.client.request.duration``. A separate call counter
would double the SDK's cost, which dominates (several µs per measurement).

| instrument | kind | unit | attributes |
| --- | --- | --- | --- |
| ``resilience.call.duration`` | Histogram | ``s`` | policy, outcome, kind (failures) |
| ``resilience.retries`` | Counter | ``{retry}`` | policy, kind |
| ``resilience.retries.exhausted`` | Counter | ``{call}`` | policy, reason |
| ``resilience.rejections`` | Counter | ``{call}`` | policy, reason |
| ``resilience.timeouts`` | Counter | ``{timeout}`` | policy, reason |
| ``resilience.circuit.transitions`` | Counter | ``{transition}`` | policy, state, reason |
| ``resilience.circuit.state`` | ObservableGauge | ``1`` | policy, state |
| ``resilience.bulkhead.limit_changes`` | Counter | ``{change}`` | policy, reason |
| ``resilience.fallbacks`` | Counter | ``{fallback}`` | policy, kind |
| ``resilience.hedges`` | Counter | ``{hedge}`` | policy |
| ``resilience.rate_limit.waits`` | Histogram | ``s`` | policy |
| ``resilience.rate_limit.rate_changes`` | Counter | ``{change}`` | policy, reason |
| ``resilience.rate_limit.admitted`` | ObservableCounter | ``{unit}`` | policy |
| ``resilience.bulkhead.in_flight`` | ObservableGauge | ``{call}`` | policy |
| ``resilience.bulkhead.queued`` | ObservableGauge | ``{call}`` | policy |
| ``resilience.bulkhead.limit`` | ObservableGauge | ``{call}`` | policy |

The three bulkhead gauges report the bulkheads registered with
`OpenTelemetryMetrics.watch`, read by their callbacks when the SDK collects:
nothing on any call's path; ``resilience.rate_limit.admitted`` likewise reports
the units admitted by the rate limiters registered with it
(`resilience.RateLimiter.admitted`, a counter each limiter keeps).

Attribute keys are ``resilience.policy``, ``resilience.outcome``,
``resilience.kind``, ``resilience.reason`` and ``resilience.state``; their values
are policy names and fixed vocabularies, never exception messages, URLs,
headers or arguments.

Traces: `OpenTelemetryTracing` (a hook) adds every policy's events to the
current span, and its ``spans()`` policy opens a child span per call or attempt
(see ``_otel_trace.py`` and ``docs/tracing.md``).

Needs the ``otel`` extra (``opentelemetry-api``); importing `resilience` never
imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, final

from opentelemetry import metrics as otel
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

import resilience as rs
from resilience import Clock, transient
from resilience.engine import MAX_KINDS, OTHER, SYSTEM_CLOCK, Observer, fork_safe_lock, to_count

__all__ = [
    "ATTRIBUTES",
    "DURATION_BUCKETS",
    "INSTRUMENTS",
    "OpenTelemetryMetrics",
    "OpenTelemetryTracing",
    "TracingSpans",
]

POLICY: Final = "resilience.policy"
OUTCOME: Final = "resilience.outcome"
KIND: Final = "resilience.kind"
REASON: Final = "resilience.reason"
STATE: Final = "resilience.state"

ATTRIBUTES: Final = (POLICY, OUTCOME, KIND, REASON, STATE)
"""Every attribute key this integration sets."""

INSTRUMENTS: Final = (
    "resilience.call.duration",
    "resilience.retries",
    "resilience.retries.exhausted",
    "resilience.rejections",
    "resilience.timeouts",
    "resilience.circuit.transitions",
    "resilience.circuit.state",
    "resilience.bulkhead.limit_changes",
    "resilience.fallbacks",
    "resilience.hedges",
    "resilience.rate_limit.waits",
    "resilience.rate_limit.rate_changes",
    "resilience.rate_limit.admitted",
    "resilience.bulkhead.in_flight",
    "resilience.bulkhead.queued",
    "resilience.bulkhead.limit",
)
"""Every instrument name this integration creates."""

DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
    120.0,
)
"""Seconds: the bucket boundaries advised for ``resilience.call.duration`` (the
OpenTelemetry HTTP ones, extended to the minutes that LLM calls take). A View
configured on the `MeterProvider` overrides them."""

_STATES: Final = ("closed", "open", "half_open", "isolated")

# The bulkhead gauges: name, description, and the index of the figure in a reading.
_GAUGES: Final = (
    ("resilience.bulkhead.in_flight", "Calls running now in the bulkheads watched.", 0),
    ("resilience.bulkhead.queued", "Callers waiting now in the bulkheads' queues.", 1),
    ("resilience.bulkhead.limit", "Calls the bulkheads watched let run at once now.", 2),
)


def _no_gauges() -> Mapping[str, tuple[int, int, int]]:
    return {}


def _no_admitted() -> Mapping[str, float]:
    return {}


@final
class _Recorder:
    """Reports the calls of one label; attribute sets are built once and reused."""

    __slots__ = ("_duration", "_kinds", "_lock", "_name", "_ok")

    def __init__(self, sink: _Sink, name: str) -> None:
        self._duration = sink.duration
        self._name = name
        self._ok = {POLICY: name, OUTCOME: "success"}
        self._kinds: dict[str, dict[str, str]] = {
            "rejected": {POLICY: name, OUTCOME: "rejected"},
            "cancelled": {POLICY: name, OUTCOME: "cancelled"},
        }
        self._lock = fork_safe_lock()

    def _failure(self, kind: str) -> dict[str, str]:
        attributes = self._kinds.get(kind)
        if attributes is None:
            with self._lock:
                # rejected and cancelled, then at most MAX_KINDS failure kinds, "other" included
                if len(self._kinds) - 2 >= MAX_KINDS - 1:
                    kind = "other"
                attributes = self._kinds.setdefault(
                    kind, {POLICY: self._name, OUTCOME: "failure", KIND: kind}
                )
        return attributes

    # One histogram per call and no separate counter: its count is the number
    # of calls, and each SDK record costs microseconds.

    def success(self, seconds: float, /) -> None:
        self._duration.record(max(seconds, 0.0), self._ok)

    def failure(self, kind: str, seconds: float, /) -> None:
        self._duration.record(max(seconds, 0.0), self._failure(kind))

    def rejected(self, seconds: float, /) -> None:
        self._duration.record(max(seconds, 0.0), self._kinds["rejected"])

    def cancelled(self, seconds: float, /) -> None:
        self._duration.record(max(seconds, 0.0), self._kinds["cancelled"])


@final
class _Sink:
    """The OpenTelemetry sink: the instruments, the known names, the circuits' last states."""

    __slots__ = (
        "admitted",
        "duration",
        "exhausted_counter",
        "fallbacks",
        "gauges",
        "hedges",
        "limit_changes",
        "lock",
        "max_series",
        "names",
        "rate_changes",
        "rate_waits",
        "recorders",
        "rejections",
        "retries",
        "states",
        "timeouts",
        "transitions",
    )

    def __init__(self, meter: otel.Meter, max_series: int) -> None:
        self.lock = fork_safe_lock()
        self.max_series = max_series
        self.names: set[str] = set()
        self.recorders: dict[str, _Recorder] = {}
        self.states: dict[str, str] = {}
        self.duration = meter.create_histogram(
            "resilience.call.duration",
            unit="s",
            description="Duration of each call observed, by outcome; its count counts calls.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            "resilience.retries", unit="{retry}", description="Retries scheduled."
        )
        self.exhausted_counter = meter.create_counter(
            "resilience.retries.exhausted",
            unit="{call}",
            description="Calls on which Retry gave up.",
        )
        self.rejections = meter.create_counter(
            "resilience.rejections", unit="{call}", description="Calls a policy refused to run."
        )
        self.timeouts = meter.create_counter(
            "resilience.timeouts", unit="{timeout}", description="Deadlines that passed."
        )
        self.transitions = meter.create_counter(
            "resilience.circuit.transitions",
            unit="{transition}",
            description="Circuit breaker state changes, by the state entered.",
        )
        meter.create_observable_gauge(
            "resilience.circuit.state",
            callbacks=[self._observe_states],
            unit="1",
            description="1 for the state each circuit breaker last announced, 0 for the others.",
        )
        self.limit_changes = meter.create_counter(
            "resilience.bulkhead.limit_changes",
            unit="{change}",
            description="Times a bulkhead's adaptive limit moved, by reason.",
        )
        self.fallbacks = meter.create_counter(
            "resilience.fallbacks",
            unit="{fallback}",
            description="Calls a Fallback answered instead, by the kind of failure replaced.",
        )
        self.hedges = meter.create_counter(
            "resilience.hedges",
            unit="{hedge}",
            description="Extra copies of slow calls a Hedge started.",
        )
        self.rate_waits = meter.create_histogram(
            "resilience.rate_limit.waits",
            unit="s",
            description="How long a RateLimiter made each call it could not admit at once wait.",
        )
        self.rate_changes = meter.create_counter(
            "resilience.rate_limit.rate_changes",
            unit="{change}",
            description="Times an adaptive RateLimiter's rate moved, by reason.",
        )
        # Where the gauges' callbacks read the watched bulkheads: set by the observer.
        self.gauges: Callable[[], Mapping[str, tuple[int, int, int]]] = _no_gauges
        for name, description, index in _GAUGES:
            meter.create_observable_gauge(
                name, callbacks=[self._gauge(index)], unit="{call}", description=description
            )
        # Where the counter's callback reads the watched rate limiters: set by the observer.
        self.admitted: Callable[[], Mapping[str, float]] = _no_admitted
        meter.create_observable_counter(
            "resilience.rate_limit.admitted",
            callbacks=[self._observe_admitted],
            unit="{unit}",
            description="Units the RateLimiters watched admitted since they were made.",
        )

    def label(self, name: str) -> str:
        """Return *name*, or ``"_other"`` once ``max_series`` names are known."""
        if name in self.names:
            return name
        with self.lock:
            if name not in self.names:
                if len(self.names) >= self.max_series:
                    return OTHER
                self.names.add(name)
        return name

    def recorder(self, name: str, /) -> _Recorder:
        name = self.label(name)
        with self.lock:
            rec = self.recorders.get(name)
            if rec is None:
                rec = self.recorders[name] = _Recorder(self, name)
        return rec

    def retry(self, name: str, kind: str, /) -> None:
        self.retries.add(1, {POLICY: self.label(name), KIND: kind})

    def exhausted(self, name: str, reason: str, /) -> None:
        self.exhausted_counter.add(1, {POLICY: self.label(name), REASON: reason})

    def rejection(self, name: str, reason: str, /) -> None:
        self.rejections.add(1, {POLICY: self.label(name), REASON: reason})

    def timeout(self, name: str, idle: bool, /) -> None:
        self.timeouts.add(1, {POLICY: self.label(name), REASON: "idle" if idle else "total"})

    def transition(self, name: str, state: str, reason: str | None, /) -> None:
        name = self.label(name)
        attributes = {POLICY: name, STATE: state}
        if reason is not None:
            attributes[REASON] = reason
        with self.lock:
            self.states[name] = state
        self.transitions.add(1, attributes)

    def limit_changed(self, name: str, reason: str, /) -> None:
        self.limit_changes.add(1, {POLICY: self.label(name), REASON: reason})

    def fallback(self, name: str, kind: str, /) -> None:
        self.fallbacks.add(1, {POLICY: self.label(name), KIND: kind})

    def hedge(self, name: str, /) -> None:
        self.hedges.add(1, {POLICY: self.label(name)})

    def rate_wait(self, name: str, seconds: float, /) -> None:
        self.rate_waits.record(seconds, {POLICY: self.label(name)})

    def rate_changed(self, name: str, reason: str, /) -> None:
        self.rate_changes.add(1, {POLICY: self.label(name), REASON: reason})

    def _gauge(self, index: int) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(figures[index], {POLICY: name})
                for name, figures in sorted(self.gauges().items())
            ]

        return observe

    def _observe_admitted(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(units, {POLICY: name}) for name, units in sorted(self.admitted().items())
        ]

    def _observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            states = sorted(self.states.items())
        return [
            Observation(1 if state == current else 0, {POLICY: name, STATE: state})
            for name, current in states
            for state in _STATES
        ]


@final
class OpenTelemetryMetrics(Observer[_Sink]):
    """
    Report calls, outcomes, every policy's events and bulkheads' gauges to OpenTelemetry.

    The events: retries, give-ups, rejections, timeouts, circuit
    transitions, limit changes, fallbacks used and hedges started.

    Like `resilience.MetricsCollector`, it is both a `resilience.Hook`
    (``rs.add_hook(otel_metrics)``: failure-path events, labelled by the name
    of the policy that emitted them) and a policy
    (``rs.compose(otel_metrics, retry, breaker)``: every call timed and
    counted under this object's `name`; outermost, one observation per logical
    call, innermost, one per attempt). ``watch(bulkhead)`` adds a bulkhead
    to the ``resilience.bulkhead.*`` gauges (its ``running``, ``waiting``
    and ``limit``, with ``resilience.policy`` = its name), read when the SDK
    collects; held weakly, summed with others of its name (see
    `resilience.MetricsCollector.watch`). ``watch(limiter)`` adds a
    `resilience.RateLimiter`'s units admitted to
    ``resilience.rate_limit.admitted`` likewise. See the module docstring for the
    instruments and attributes.

    Args:
        name: The ``resilience.policy`` attribute of the calls this object
            times when bound in a pipeline. Default: `None`, reported as
            ``"default"``. Use `named` for other pipelines.
        on: What the outcome of a call is (see `resilience.MetricsCollector`).
            Default: `resilience.transient`.
        results: Whether returned results are classified (see
            `resilience.MetricsCollector`). Default: `True`.
        clock: Where durations are read. Default: the system clock.
        meter_provider: Where the instruments come from. Default: the global
            provider (`opentelemetry.metrics.get_meter_provider`). The meter
            is named ``"resilience"``, versioned with the library.
        max_series: How many distinct ``resilience.policy`` values are
            reported; further names become ``"_other"``. Default: 256.

    Raises:
        TypeError: On an argument of the wrong type.
        ValueError: If *max_series* is below 1.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        name: str | None = None,
        on: object = transient,
        results: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        meter_provider: MeterProvider | None = None,
        max_series: int = 256,
    ) -> None:
        max_series = to_count("max_series", max_series)
        meter = otel.get_meter("resilience", rs.__version__, meter_provider)
        sink = _Sink(meter, max_series)
        self._setup(sink, name, on, clock, results)
        sink.gauges = self._gauges
        sink.admitted = self._admitted

    def _watch_label(self, name: str) -> str:
        return self._sink.label(name)

    def __repr__(self) -> str:
        return f"OpenTelemetryMetrics(name={self._name!r})"


# Traces, in a module of their own; imported last (a one-line re-export).
from ._otel_trace import OpenTelemetryTracing, TracingSpans  # noqa: E402
