"""
Text for `describe()`: a classifier's rules, a backoff's sleeps, durations.

The policies' ``describe()`` methods build their `Description` from these, so
that every policy words rules and durations the same way. Nothing here runs on
a call path.
"""

from __future__ import annotations

import random
import re
import types
from typing import Final, Literal

from . import backoff as _backoff
from ._classify import ErrorClassifier, Rule

__all__ = ["backoff_bounds", "rule_lines", "seconds"]

_EXACT_RETRIES: Final = 10_000
"""Sleeps computed one by one; past this many retries, the last one repeats."""


def seconds(value: float) -> str:
    """Return *value* as ``"1.5 s"`` (six significant digits)."""
    return f"{value:.6g} s"


# --- rules -----------------------------------------------------------------------


def _status(status: int | range | tuple[int, ...]) -> str:
    if isinstance(status, int):
        return f"status {status}"
    if isinstance(status, range):
        if status.step == 1 and len(status):
            return f"status {status.start}-{status.stop - 1}"
        return f"status in {status!r}"
    return "status " + ", ".join(map(str, status))


def _predicate(when: object) -> str:
    if isinstance(when, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        return f"if {when.__qualname__}"
    text = repr(when)
    # A predicate object with a readable repr (rs.transient's third-party
    # matchers) reads as a noun: "<timeout exceptions of requests, ...>".
    return text if text.startswith("<") else f"if {text}"


def condition(rule: Rule) -> str:
    """Return what *rule* matches, in a few words: ``"APITimeoutError if _not_sent"``."""
    parts: list[str] = []
    exception = rule.exception
    if exception is not None and not (exception == (Exception,) and rule.when is not None):
        names = [cls.__qualname__ for cls in exception]
        parts.append(names[0] if len(names) == 1 else f"({', '.join(names)})")
    if rule.status is not None:
        parts.append(_status(rule.status))
    message = rule.message
    if isinstance(message, re.Pattern):
        parts.append(f"message matches {message.pattern!r}")
    elif message is not None:
        parts.append(f"message contains {message!r}")
    if rule.when is not None:
        parts.append(_predicate(rule.when))
    return " ".join(parts)


def rule_lines(classifier: ErrorClassifier, acts: Literal["retry", "trip"]) -> list[str]:
    """
    Return the rules of *classifier* as aligned lines, indented, for one policy.

    *acts* is the verdict the policy acts on: ``"retry"`` for Retry, ``"trip"``
    for a circuit breaker. Each line gives the condition, the verdict and the
    kind; the last says what happens to anything else.
    """
    yes, no = ("retry", "no retry") if acts == "retry" else ("trips", "does not trip")
    rows = [
        (condition(rule), yes if getattr(rule, acts) else no, rule.kind or "")
        for rule in classifier.rules
    ]
    rows.append(("anything else", no, ""))
    width = max(len(row[0]) for row in rows)
    middle = max(len(row[1]) for row in rows)
    lines = []
    for text, verdict, kind in rows:
        lines.append(f"  {text:<{width}}  {verdict:<{middle}}  {kind}".rstrip())
    if classifier.handles_results:
        lines.append(
            "  (rules without exception= also match returned results, such as a 503 response)"
        )
    return lines


# --- backoff -----------------------------------------------------------------------


class _Pinned(random.Random):
    """A random source pinned to one end of [0, 1]: a builtin jitter then gives its bound."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


_CURVES: Final = (_backoff.constant, _backoff.linear, _backoff.exponential, _backoff.schedule)
_JITTERS: Final = (_backoff.none, _backoff.full, _backoff.equal, _backoff.decorrelated)


def _is_builtin(backoff: object) -> bool:
    if type(backoff) not in _CURVES:
        return False
    jitter = getattr(backoff, "jitter", None)
    return jitter in _JITTERS or isinstance(jitter, _backoff.proportional)


def backoff_bounds(backoff: _backoff.Backoff, retries: int) -> list[tuple[float, float]] | None:
    """
    Return the (shortest, longest) sleep before each of *retries* retries, or `None` if unknown.

    Exact for the builtin curves and jitters: each builtin jitter grows with
    its random draw (and with the previous delay), so pinning the draw to 0
    and to 1 gives the bounds. A backoff of your own is not guessed at.
    """
    if not _is_builtin(backoff) or retries < 1:
        return [] if retries < 1 else None
    low_rng, high_rng = _Pinned(0.0), _Pinned(1.0)
    pairs: list[tuple[float, float]] = []
    low = high = 0.0
    for attempt in range(1, min(retries, _EXACT_RETRIES) + 1):
        low = float(backoff(attempt, low, low_rng))
        high = float(backoff(attempt, high, high_rng))
        pairs.append((low, high))
    if retries > _EXACT_RETRIES:
        if isinstance(backoff, _backoff.linear) and backoff.max is None and backoff.step > 0:
            return None  # still growing: not worth a closed form here
        pairs.extend([pairs[-1]] * (retries - _EXACT_RETRIES))
    return pairs


def span(low: float, high: float) -> str:
    """Return ``"0.75-1.25 s"``, or ``"1 s"`` when both ends are equal."""
    if low == high:
        return seconds(high)
    return f"{low:.6g}-{seconds(high)}"
