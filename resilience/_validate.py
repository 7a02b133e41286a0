"""
Converters and validators shared by every policy's attrs fields.

One keyword means one thing everywhere (``name``, ``hooks``, ``clock``, durations),
so it is checked in one place, with one message naming the parameter and the value.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from typing import Any

import attrs

from ._events import Hook

__all__ = ["check_clock", "check_name", "check_rng", "positive_seconds", "to_hooks"]


def positive_seconds(name: str, value: object) -> float:
    """Return *value* (a number or `datetime.timedelta`) as finite seconds > 0, or raise."""
    given = value
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be seconds (a number or a datetime.timedelta), "
            f"got {type(given).__name__}: {given!r}"
        )
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {given!r}")
    return seconds


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
