"""
The builtin backoffs that `import resilience` does not need, made when first named.

`resilience.backoff` holds what `Retry` uses by default (`exponential`, the
jitters); `constant`, `linear`, `schedule` and `proportional` live here and
are imported by ``resilience.backoff``'s module ``__getattr__`` on first use:
attrs generates the methods of each class when it is defined, and most
programs name one or two of them, if any. They are ``resilience.backoff.X``
in every respect (``__module__``, pickling, the docs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, final

import attrs

from .backoff import (
    _LONGEST,
    Jitter,
    _check_attempt,
    _check_jitter,
    _check_max,
    _duration,
    _finish,
    _is_real,
    _to_float,
    _to_initial,
    none,
)

if TYPE_CHECKING:
    import random

__all__ = ["constant", "linear", "proportional", "schedule"]


def _to_delay(value: float | timedelta) -> float:
    return _duration("delay", value)


def _to_step(value: float | timedelta) -> float:
    return _duration("step", value)


def _to_optional_max(value: float | timedelta | None) -> float | None:
    return None if value is None else _duration("max", value)


def _check_fraction(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_real(value):
        raise TypeError(f"fraction must be a number, got {type(value).__name__}: {value!r}")
    if not (isinstance(value, float) and 0.0 <= value <= 1.0):
        raise ValueError(f"fraction must be a number between 0 and 1, got {value!r}")


def _to_delays(value: Iterable[float | timedelta]) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"delays must be an iterable of seconds, got {type(value).__name__}: {value!r}"
        )
    delays = tuple(_duration(f"delays[{index}]", item) for index, item in enumerate(value))
    if not delays:
        raise ValueError(f"delays must not be empty, got {value!r}")
    return delays


@final
@attrs.frozen(repr=False)
class proportional:
    """
    Proportional jitter: the curve value times a uniform factor in ``[1 - fraction, 1 + fraction]``.

    ``proportional(0.25)`` is the "±25 %" of the docs. Reach: up to
    ``(1 + fraction)`` times the curve value, never below ``(1 - fraction)`` times.

    Args:
        fraction: The relative spread, a number in ``[0, 1]``; ``0`` means no
            jitter, ``1`` means anywhere from ``0`` to twice the curve value.

    Raises:
        TypeError: *fraction* is not a number.
        ValueError: *fraction* is outside ``[0, 1]``.
    """

    fraction: float = attrs.field(converter=_to_float, validator=_check_fraction)

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        """Return *delay* times a uniform factor in ``[1 - fraction, 1 + fraction]``."""
        low = 1.0 - self.fraction
        high = 1.0 + self.fraction
        factor = low + (high - low) * rng.random()
        return delay * (factor if factor < high else high)

    def __repr__(self) -> str:
        return f"proportional({self.fraction!r})"


@final
@attrs.frozen
class constant:
    """
    Wait the same *delay* before every retry.

    There is no cap: the result stays within *jitter*'s reach of *delay*.

    Args:
        delay: Seconds, or a `datetime.timedelta`. Required.
        jitter: How to spread the delay. Default: `none`.

    Raises:
        TypeError: *delay* is not a number or timedelta, or *jitter* is not callable.
        ValueError: *delay* is negative, NaN or infinite.
    """

    delay: float = attrs.field(converter=_to_delay)
    jitter: Jitter = attrs.field(default=none, kw_only=True, validator=_check_jitter)

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        """Return the seconds to wait after failed attempt *attempt* (see `Backoff`)."""
        if attempt < 1:
            _check_attempt(attempt)
        jitter = self.jitter
        if jitter is none:  # the failure path's common case: no call, no clamp to make
            delay = self.delay
            return delay if delay < _LONGEST else _LONGEST
        return _finish(jitter, self.delay, previous, rng, _LONGEST)


@final
@attrs.frozen
class linear:
    """
    Wait *initial*, then *step* more before each further retry: ``initial + step * (attempt - 1)``.

    ``linear(1.0)`` waits 1, 2, 3, 4… seconds. With *max*, the curve stops
    growing at *max* and the jittered result never exceeds it.

    Args:
        initial: Seconds before the first retry, or a `datetime.timedelta`. Required.
        step: Seconds added per retry, or a `datetime.timedelta`. Default: *initial*.
        max: Cap in seconds on the curve and on the jittered result, or a
            `datetime.timedelta`; at least *initial*. Default: `None` (no cap).
        jitter: How to spread each delay. Default: `none`.

    Raises:
        TypeError: A duration is not a number or timedelta, or *jitter* is not callable.
        ValueError: A duration is negative, NaN or infinite, or *max* < *initial*.
    """

    initial: float = attrs.field(converter=_to_initial)
    step: float = attrs.field(
        default=attrs.Factory(lambda self: self.initial, takes_self=True),
        kw_only=True,
        converter=_to_step,
    )
    max: float | None = attrs.field(
        default=None, kw_only=True, converter=_to_optional_max, validator=_check_max
    )
    jitter: Jitter = attrs.field(default=none, kw_only=True, validator=_check_jitter)

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        """Return the seconds to wait after failed attempt *attempt* (see `Backoff`)."""
        _check_attempt(attempt)
        ceiling = _LONGEST if self.max is None else self.max
        try:
            delay = self.initial + self.step * (attempt - 1)
        except OverflowError:  # an attempt number beyond the float range
            delay = ceiling if self.step else self.initial
        return _finish(self.jitter, delay if delay < ceiling else ceiling, previous, rng, ceiling)


@final
@attrs.frozen
class schedule:
    """
    Wait the given delays in turn, then repeat the last one for every further retry.

    ``schedule([0, 1, 2, 4, 8])`` retries at once, then after 1, 2, 4 and 8
    seconds, then every 8 seconds for as long as `Retry` keeps trying. The
    delays are used in the order given. There is no cap: the result stays
    within *jitter*'s reach of the scheduled delay.

    Args:
        delays: Seconds (numbers or `datetime.timedelta`) before the 1st, 2nd…
            retry; at least one. Required.
        jitter: How to spread each delay. Default: `none`.

    Raises:
        TypeError: *delays* is not an iterable of numbers or timedeltas, or
            *jitter* is not callable.
        ValueError: *delays* is empty, or holds a negative, NaN or infinite delay.
    """

    delays: tuple[float, ...] = attrs.field(converter=_to_delays)
    jitter: Jitter = attrs.field(default=none, kw_only=True, validator=_check_jitter)

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        """Return the seconds to wait after failed attempt *attempt* (see `Backoff`)."""
        _check_attempt(attempt)
        delays = self.delays
        delay = delays[attempt - 1] if attempt < len(delays) else delays[-1]
        return _finish(self.jitter, delay, previous, rng, _LONGEST)


for _cls in (constant, linear, proportional, schedule):
    _cls.__module__ = "resilience.backoff"
