"""
Converters and validators shared by every policy's attrs fields.

One keyword means one thing everywhere (``name``, ``hooks``, ``clock``, durations,
counts), so it is checked in one place, with one message naming the parameter and
the value: every duration goes through `to_seconds`, every count through `to_count`.
They return the value normalised, so they serve as attrs converters as well as checks.
They run at construction only, never on a call path.
"""

from __future__ import annotations

import datetime
import math
import numbers
from collections.abc import Iterable
from typing import Any, Final, Literal, TypeAlias, overload

import attrs

from ._events import Hook

__all__ = [
    "Shown",
    "check_clock",
    "check_name",
    "check_rng",
    "to_count",
    "to_hooks",
    "to_seconds",
]


Shown: TypeAlias = Literal["given", "seconds", "seconds-or-given"]
"""Which value a `to_seconds` ValueError shows; see its *shown*."""

_SECONDS: Final = "seconds (a number or a datetime.timedelta)"


@overload
def to_seconds(
    name: str,
    value: object,
    *,
    zero: bool = ...,
    none: Literal[False] = ...,
    inf: bool = ...,
    maximum: float | None = ...,
    minimum: float | None = ...,
    why: str = ...,
    expected: str = ...,
    bound: str | None = ...,
    shown: Shown = ...,
) -> float: ...
@overload
def to_seconds(
    name: str,
    value: object,
    *,
    zero: bool = ...,
    none: bool,
    inf: bool = ...,
    maximum: float | None = ...,
    minimum: float | None = ...,
    why: str = ...,
    expected: str = ...,
    bound: str | None = ...,
    shown: Shown = ...,
) -> float | None: ...


def to_seconds(
    name: str,
    value: object,
    *,
    zero: bool = False,
    none: bool = False,
    inf: bool = False,
    maximum: float | None = None,
    minimum: float | None = None,
    why: str = "",
    expected: str = _SECONDS,
    bound: str | None = None,
    shown: Shown = "given",
) -> float | None:
    """
    Return the duration *value* as float seconds, or raise an error naming *name* and the value.

    Every duration a policy takes goes through here: a real number (not a
    `bool`: ``True`` is no duration) or a `datetime.timedelta`. By default the
    seconds must be finite and > 0; the options widen or narrow that. An int
    beyond any float is infinite: accepted where infinity is (*inf*), refused by
    name elsewhere, never an `OverflowError`.

    Args:
        name: The parameter, as the caller spells it (the errors start with it).
        value: What the caller passed.
        zero: Accept 0 (returned as ``0.0``). Default: `False` (> 0).
        none: Accept `None`, returned as is. Default: `False`.
        inf: Accept infinity, meaning no limit. Default: `False` (finite only).
        maximum: Refuse more seconds than this. Default: `None` (no maximum).
        minimum: Refuse fewer seconds than this (0 stays allowed when *zero*).
            Default: `None` (no minimum beyond *zero*).
        why: Why the maximum or minimum, said in parentheses in its error.
            Default: none.
        expected: What the TypeError says *value* must be (``" or None"`` is
            added when *none*). Default: ``"seconds (a number or a datetime.timedelta)"``.
        bound: What the ValueError says the seconds must be. Default: from
            *zero* and *inf* (``"a finite number of seconds > 0"``).
        shown: The value the ValueError shows: ``"given"`` (as passed,
            the default), ``"seconds"`` (as converted: an int beyond any float
            shows as ``inf``) or ``"seconds-or-given"`` (as converted where a
            float holds it, else as passed). The wordings and shown values
            differ by caller only as each one's messages did before they shared
            this function.

    Returns:
        Float seconds, or `None` (when *none* allows it).

    Raises:
        TypeError: If *value* is neither a real number nor a timedelta (nor `None`
            when allowed).
        ValueError: If the seconds are NaN, negative, zero or infinite where not
            allowed, above *maximum*, or below *minimum*.
    """
    if value is None and none:
        return None
    overflow = False
    if isinstance(value, datetime.timedelta):
        number = value.total_seconds()
    elif not isinstance(value, bool) and isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:  # an int (or Fraction) beyond any float: infinite
            number = -math.inf if value < 0 else math.inf
            overflow = True
    else:
        alternative = " or None" if none else ""
        raise TypeError(
            f"{name} must be {expected}{alternative}, got {type(value).__name__}: {value!r}"
        )
    as_shown = value if shown == "given" or (overflow and shown == "seconds-or-given") else number
    if not (number > 0 or (zero and number == 0)) or (number == math.inf and not inf):
        if bound is None:
            bound = f"{'a' if inf else 'a finite'} number of seconds {'>=' if zero else '>'} 0"
        raise ValueError(f"{name} must be {bound}, got {as_shown!r}")
    because = f" ({why})" if why else ""
    if maximum is not None and number > maximum:
        raise ValueError(
            f"{name} must be at most {maximum:.15g} seconds{because}, got {as_shown!r}"
        )
    if minimum is not None and number and number < minimum:
        raise ValueError(
            f"{name} must be at least {minimum:.15g} seconds{because}, got {as_shown!r}"
        )
    return number if number else 0.0  # -0.0 too is zero seconds


@overload
def to_count(
    name: str,
    value: object,
    *,
    minimum: int = ...,
    none: Literal[False] = ...,
    maximum: int | None = ...,
    why: str = ...,
) -> int: ...
@overload
def to_count(
    name: str,
    value: object,
    *,
    minimum: int = ...,
    none: bool,
    maximum: int | None = ...,
    why: str = ...,
) -> int | None: ...


def to_count(
    name: str,
    value: object,
    *,
    minimum: int = 1,
    none: bool = False,
    maximum: int | None = None,
    why: str = "",
) -> int | None:
    """
    Return the count *value* as is, or raise an error naming *name* and the value.

    Every count a policy takes (attempts, thresholds, window sizes) goes
    through here: an `int`, not a `bool` (``True`` is no count), at least
    *minimum*.

    Args:
        name: The parameter, as the caller spells it (the errors start with it).
        value: What the caller passed.
        minimum: The smallest count accepted. Default: 1.
        none: Accept `None`, returned as is. Default: `False`.
        maximum: The largest count accepted. Default: `None` (no maximum).
        why: Why the maximum, said in parentheses in its error. Default: none.

    Returns:
        *value*, or `None` (when *none* allows it).

    Raises:
        TypeError: If *value* is not an int (nor `None` when allowed).
        ValueError: If *value* is below *minimum* or above *maximum*.
    """
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int >= {minimum}, got {type(value).__name__}: {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        because = f" ({why})" if why else ""
        raise ValueError(f"{name} must be <= {maximum}{because}, got {value!r}")
    return value


def to_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    """Convert ``hooks=`` to a tuple of callables, or raise `TypeError` naming ``hooks``."""
    try:
        hooks = tuple(value)
    except TypeError:
        raise TypeError(
            f"hooks must be an iterable of callables taking an event, got {value!r}"
        ) from None
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"hooks must be callables taking an event, got {hook!r}")
    return hooks


def check_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate ``name=``: a string or `None`."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"name must be a str or None, got {type(value).__name__}: {value!r}")


def check_clock(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate ``clock=``: something with ``now()``, ``sleep()`` and ``asleep()``."""
    if not all(callable(getattr(value, m, None)) for m in ("now", "sleep", "asleep")):
        raise TypeError(f"clock must have now(), sleep() and asleep(), got {value!r}")


def check_rng(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate ``rng=``: a random source with ``random()`` (a `random.Random`)."""
    if isinstance(value, type) or not callable(getattr(value, "random", None)):
        raise TypeError(
            f"rng must be a random source such as random.Random(seed), "
            f"got {type(value).__name__}: {value!r}"
        )
