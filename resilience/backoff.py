"""
How long `Retry` waits between attempts: the `Backoff` protocol and its builtins.

A backoff is any callable ``(attempt, previous, rng) -> seconds``. The builtins
split that job in two: a *curve* gives the un-jittered delay for an attempt
(`constant`, `linear`, `exponential`, `schedule`) and a *jitter* spreads it at
random (`none`, `full`, `equal`, `decorrelated`, `proportional`) so that
clients that failed together do not retry together:

```python
import resilience as rs

rs.backoff.exponential(initial=1.0, max=32.0, jitter=rs.backoff.proportional(0.25))
```

Where the cap applies: the ``max`` of `linear` and `exponential` caps the
curve *and* the jittered result, so those backoffs never return more than
``max``. `constant` and `schedule` have no ``max``: their result stays within
the jitter's *reach* (how far above the curve value it can go), documented on
each jitter.

Every builtin is immutable, hashable and comparable, with a repr that reads as
the call that made it; derive variants with ``attrs.evolve``. Durations are
seconds, as a number or a `datetime.timedelta`. Bad configuration raises at
construction, naming the parameter and the value.
"""

from __future__ import annotations

import numbers
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, final, runtime_checkable

import attrs

from ._validate import to_seconds

if TYPE_CHECKING:
    import random

    from ._backoffs import constant as constant
    from ._backoffs import linear as linear
    from ._backoffs import proportional as proportional
    from ._backoffs import schedule as schedule

__all__ = [
    "DEFAULT",
    "Backoff",
    "Jitter",
    "constant",
    "decorrelated",
    "equal",
    "exponential",
    "full",
    "linear",
    "none",
    "proportional",
    "schedule",
]

# The largest finite float: the ceiling of curves that have no ``max``, so that
# a jitter pushed past the float range still yields a finite delay.
_LONGEST = sys.float_info.max


@runtime_checkable
class Backoff(Protocol):
    """
    Decide how long to wait before the next attempt.

    `Retry` calls it once per failed attempt that it will retry. Implement it
    with a plain function or a class:

    ```python
    def polite(attempt: int, previous: float, rng: random.Random, /) -> float:
        return min(2.0 * attempt, 30.0) + rng.uniform(0.0, 0.5)

    rs.Retry(on=rs.transient, backoff=polite)
    ```
    """

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        """
        Return the seconds to wait before the next attempt.

        Args:
            attempt: The 1-based number of the attempt that just failed, so the
                first retry is computed with ``attempt=1``.
            previous: Seconds this backoff returned the previous time for the
                same call; ``0.0`` the first time.
            rng: The only source of randomness to use (never the global
                `random` functions), so that a seeded `random.Random` makes
                the sequence reproducible.

        Returns:
            Seconds to wait: a finite number ``>= 0``.
        """
        ...


@runtime_checkable
class Jitter(Protocol):
    """
    Spread a curve's delay at random, the second half of the builtin backoffs.

    Pass one as ``jitter=`` to `constant`, `linear`, `exponential` or
    `schedule`. Implement it with a plain function or a class:

    ```python
    def up_to_a_second_more(delay: float, previous: float, rng: random.Random, /) -> float:
        return delay + rng.random()

    rs.backoff.constant(2.0, jitter=up_to_a_second_more)
    ```

    The curve treats a negative result as ``0.0`` and caps the result at its
    ``max`` if it has one; a NaN result is an error (`ValueError`).
    """

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        """
        Return the jittered delay, in seconds.

        Args:
            delay: The curve's un-jittered value for this attempt, in seconds,
                already capped at the curve's ``max``.
            previous: Seconds the backoff returned the previous time for the
                same call (after jitter); ``0.0`` the first time.
            rng: The only source of randomness to use.

        Returns:
            Seconds to wait.
        """
        ...


# --------------------------------------------------------------------------
# Converters and validators (construction time only).


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _duration(name: str, value: object) -> float:
    return to_seconds(
        name,
        value,
        zero=True,
        expected="a number of seconds or a timedelta",
        bound="a finite number >= 0",
        shown="seconds-or-given",
    )


def _to_initial(value: float | timedelta) -> float:
    return _duration("initial", value)


def _to_max(value: float | timedelta) -> float:
    return _duration("max", value)


def _to_float(value: float) -> float:
    """Normalize a real number to float; leave anything else to the validator."""
    if _is_real(value):
        try:
            return float(value)
        except OverflowError:  # an int or Fraction beyond the float range
            pass
    return value


def _check_max(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < instance.initial:
        raise ValueError(f"max must be >= initial ({instance.initial!r}), got {value!r}")


def _check_multiplier(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_real(value):
        raise TypeError(f"multiplier must be a number, got {type(value).__name__}: {value!r}")
    if not (isinstance(value, float) and 1.0 <= value <= _LONGEST):
        raise ValueError(f"multiplier must be a finite number >= 1, got {value!r}")


def _check_jitter(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, type):
        # `jitter=proportional` (the class, not yet called) is callable yet wrong.
        raise TypeError(f"jitter must be a Jitter value, got the class {value.__name__!r} itself")
    if not callable(value):
        raise TypeError(f"jitter must be a callable Jitter, got {type(value).__name__}: {value!r}")


# --------------------------------------------------------------------------
# Jitters.


def _finish(
    jitter: Jitter, delay: float, previous: float, rng: random.Random, ceiling: float
) -> float:
    """Jitter *delay*, then clamp the result to ``[0, ceiling]``."""
    value = jitter(delay, previous, rng)
    if value >= 0.0:
        return float(value) if value < ceiling else ceiling
    if value < 0.0:
        return 0.0
    raise ValueError(f"jitter {jitter!r} returned {value!r}; expected a finite number >= 0")


# The jitters are singletons, pickled and copied by name (``__reduce__``): plain
# classes, equal by identity, with nothing for attrs to generate.


@final
class _NoJitter:
    """The curve value itself. Reach: exactly the curve value."""

    __slots__ = ()

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        return delay

    def __repr__(self) -> str:
        return "none"

    def __reduce__(self) -> str:
        return "none"  # pickle and copy by reference: the module's singleton


@final
class _FullJitter:
    """Uniform in ``[0, delay]``. Reach: never above the curve value."""

    __slots__ = ()

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        return delay * rng.random()

    def __repr__(self) -> str:
        return "full"

    def __reduce__(self) -> str:
        return "full"


@final
class _EqualJitter:
    """Uniform in ``[delay / 2, delay]``. Reach: never above the curve value."""

    __slots__ = ()

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        half = delay / 2.0
        value = half + half * rng.random()
        # Rounding of tiny (subnormal) delays could otherwise step past `delay`.
        return value if value < delay else delay

    def __repr__(self) -> str:
        return "equal"

    def __reduce__(self) -> str:
        return "equal"


@final
class _DecorrelatedJitter:
    """Uniform in ``[delay / 3, 3 * previous]``, the top kept in ``[delay, 3 * delay]``."""

    __slots__ = ()

    def __call__(self, delay: float, previous: float, rng: random.Random, /) -> float:
        low = delay / 3.0
        high = min(3.0 * delay, _LONGEST)
        top = 3.0 * previous if previous > 0.0 else high
        if top < delay:
            top = delay
        elif top > high:
            top = high
        value = low + (top - low) * rng.random()
        return value if value < top else top

    def __repr__(self) -> str:
        return "decorrelated"

    def __reduce__(self) -> str:
        return "decorrelated"


none: Jitter = _NoJitter()
"""
No jitter: the curve value itself.

Reach: exactly the curve value.
"""

full: Jitter = _FullJitter()
"""
"Full jitter": uniform between ``0`` and the curve value.

The widest spread, and the shortest waits on average (half the curve). May
return ``0.0``, an immediate retry. Reach: never above the curve value.
"""

equal: Jitter = _EqualJitter()
"""
"Equal jitter": half the curve value plus uniform ``0`` to the other half.

Uniform in ``[delay / 2, delay]``: always waits at least half the curve.
Reach: never above the curve value.
"""

decorrelated: Jitter = _DecorrelatedJitter()
"""
"Decorrelated jitter" (AWS), scaled by the curve: each delay depends on the previous one.

Uniform between a third of the curve value and three times the previous delay,
where that upper end is kept between the curve value and three times it (on
the first retry, or after a delay of ``0``, the upper end is three times the
curve value). Successive delays of one client form a random walk, so clients
that failed together drift apart. Every result lies in
``[delay / 3, 3 * delay]``. Reach: up to 3 times the curve value (and never above
the ``max`` of `linear` and `exponential`).
"""


# --------------------------------------------------------------------------
# Curves.


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt!r}")


@final
@attrs.frozen(kw_only=True)
class exponential:
    """
    Multiply the wait by *multiplier* after each retry: ``initial * multiplier ** (attempt - 1)``.

    The default, ``exponential()``, waits up to 0.1, 0.2, 0.4… seconds (full
    jitter), capped at 10 seconds: it equals `DEFAULT`. The curve stops growing
    at *max*, and the jittered result never exceeds *max*; attempts far past
    the float range return *max* rather than overflow.

    Args:
        initial: Seconds before the first retry, or a `datetime.timedelta`. Default: 0.1.
        max: Cap in seconds on the curve and on the jittered result, or a
            `datetime.timedelta`; at least *initial*. Default: 10.0.
        multiplier: Growth factor per retry, a finite number >= 1. Default: 2.0.
        jitter: How to spread each delay. Default: `full`.

    Raises:
        TypeError: A parameter is not a number (or timedelta), or *jitter* is not callable.
        ValueError: A duration is negative, NaN or infinite, *max* < *initial*,
            or *multiplier* < 1.
    """

    initial: float = attrs.field(default=0.1, converter=_to_initial)
    max: float = attrs.field(default=10.0, converter=_to_max, validator=_check_max)
    multiplier: float = attrs.field(default=2.0, converter=_to_float, validator=_check_multiplier)
    jitter: Jitter = attrs.field(default=full, validator=_check_jitter)

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        """Return the seconds to wait after failed attempt *attempt* (see `Backoff`)."""
        _check_attempt(attempt)
        if self.initial == 0.0:
            delay = 0.0  # and not `max` when the power below overflows
        else:
            try:
                delay = self.initial * self.multiplier ** (attempt - 1)
            except OverflowError:
                delay = self.max
        return _finish(self.jitter, min(delay, self.max), previous, rng, self.max)


DEFAULT: Backoff = exponential(initial=0.1, max=10.0, jitter=full)
"""
`Retry`'s default backoff: ``exponential(initial=0.1, max=10.0, multiplier=2.0, jitter=full)``.

Waits up to 0.1, 0.2, 0.4… seconds, never more than 10 seconds.
"""


# The builtins that Retry's default does not use, defined in `_backoffs` and
# imported when first named: `import resilience` skips their attrs classes.
_LAZY: Final = frozenset({"constant", "linear", "proportional", "schedule"})


if not TYPE_CHECKING:  # type checkers see the imports at the top, and flag unknown names

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'resilience.backoff' has no attribute {name!r}")
        from . import _backoffs

        value = getattr(_backoffs, name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
