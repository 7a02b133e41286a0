"""
What a pipeline explains: `Description`, the text for `describe()`, the renderer.

A policy's ``describe()`` returns a `Description`; the policies build theirs
from the helpers here (a classifier's rules, a backoff's sleeps, durations), so
that every policy words rules and durations the same way. `explain` and
`worst_case` compose the descriptions of a pipeline's policies for
`Pipeline.explain` and `Pipeline.worst_case`. Nothing here runs on a call path.
"""

from __future__ import annotations

import math
import random
import re
import textwrap
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, final

import attrs

from . import backoff as _backoff
from ._classify import ErrorClassifier, Rule
from ._exceptions import seconds_text
from ._validate import to_count, to_seconds

if TYPE_CHECKING:
    from ._pipeline import Policy

__all__ = [
    "Description",
    "Sleeps",
    "backoff_bounds",
    "describe",
    "explain",
    "largest",
    "rule_lines",
    "seconds",
    "worst_case",
]

_EXACT_RETRIES: Final = 10_000
"""Sleeps computed one by one; past this many retries, the last one repeats."""


def seconds(value: float) -> str:
    """Return *value* as ``"1.5 s"`` (six significant digits, no exponent)."""
    return f"{seconds_text(value, 6)} s"


# --- descriptions ---------------------------------------------------------------


def _to_lines(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


# A Description raises ValueError only, a value of the wrong type included (as documented).


def _check_description_count(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    try:
        to_count(attribute.name, value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _to_description_seconds(name: str, value: object) -> float | None:
    try:
        return to_seconds(name, value, zero=True, none=True, inf=True)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _to_waits(value: object) -> tuple[tuple[float, float], ...] | None:
    if value is None:
        return None
    try:
        pairs = tuple((float(low), float(high)) for low, high in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(
            f"waits must be (shortest, longest) pairs of seconds or None, got {value!r}"
        ) from None
    for low, high in pairs:
        if not 0 <= low <= high < math.inf:
            raise ValueError(f"waits must be pairs 0 <= shortest <= longest, got {value!r}")
    return pairs


def _default_sleeps_retry_after(self: Description) -> float | None:
    return self.sleeps


@final
@attrs.frozen(kw_only=True)
class Description:
    """
    What a policy does, for `Pipeline.explain`: a few lines of text, and how it bounds a call.

    A policy's ``describe()`` returns one (every policy of the library has it;
    implement it on your own policies). The figures model the policy as a
    function of the time *t* that what it wraps may take: a call through the
    policy takes at most ``min(limit, attempts * t + sleeps)``. `Pipeline`
    composes them, innermost first, into the worst case of a call.

    Args:
        title: One line: what the policy is (``"Retry 'jobs': up to 3 attempts"``).
        details: Further lines (rules, schedule, caveats), each a plain line;
            leading spaces indent. Default: none.
        attempts: How many times, at most, the policy runs what it wraps per
            call. Default: 1.
        sleeps: Seconds, at most, that the policy itself waits per call, in
            total (a backoff); `None`: no bound. Default: 0.0.
        sleeps_retry_after: The same when the server asks for waits
            (``Retry-After``) as long as the policy honours; `None`: no bound.
            Default: *sleeps*.
        limit: Seconds, at most, that a call through the policy takes, what it
            wraps included (a timeout); `None`: no limit of its own. Default: `None`.
        waits: The (shortest, longest) seconds of each wait between two runs of
            what the policy wraps, in order (a Retry's backoff): `explain()`
            draws them on its timeline. `None`: not known, or not waits
            between runs. Default: `None`.

    Raises:
        ValueError: On *attempts* below 1, or seconds that are negative or NaN
            (also on a value of the wrong type).

    .. versionadded:: 0.1.0
    """

    title: str
    details: tuple[str, ...] = attrs.field(default=(), converter=_to_lines)
    attempts: int = attrs.field(default=1, validator=_check_description_count)
    sleeps: float | None = 0.0
    sleeps_retry_after: float | None = attrs.field(
        default=attrs.Factory(_default_sleeps_retry_after, takes_self=True)
    )
    limit: float | None = None
    waits: tuple[tuple[float, float], ...] | None = attrs.field(default=None, converter=_to_waits)

    def __attrs_post_init__(self) -> None:
        # After attempts' validator, in field order, as the validators these replace ran.
        for name in ("sleeps", "sleeps_retry_after", "limit"):
            object.__setattr__(self, name, _to_description_seconds(name, getattr(self, name)))

    def bound(self, inner: float | None, *, retry_after: bool = True) -> float | None:
        """
        Return the most seconds a call through the policy takes, if what it wraps takes *inner*.

        Args:
            inner: Seconds, at most, that what the policy wraps takes; `None`: unbounded.
            retry_after: Whether to count the waits a server may ask for. Default: `True`.

        Returns:
            ``min(limit, attempts * inner + sleeps)`` in seconds, or `None` when unbounded.
        """
        sleeps = self.sleeps_retry_after if retry_after else self.sleeps
        total = None if inner is None or sleeps is None else self.attempts * inner + sleeps
        if self.limit is None:
            return total
        return self.limit if total is None else min(self.limit, total)


Description.__module__ = "resilience"


def describe(policy: object) -> tuple[Description, bool]:
    """Return *policy*'s description, and whether the policy gave it (else: by its repr)."""
    method = getattr(policy, "describe", None)
    if callable(method):
        found = method()
        if isinstance(found, Description):
            return found, True
    return (
        Description(
            title=repr(policy),
            details=("(no describe(): assumed to add neither runs of the call nor time)",),
        ),
        False,
    )


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


@final
class Sleeps(NamedTuple):
    """
    The (shortest, longest) sleep before each retry of a backoff, in a size independent of them.

    *pairs* holds the first retries' bounds, computed one by one; every retry
    after them, up to *retries*, sleeps as the last of *pairs*.
    """

    pairs: list[tuple[float, float]]
    retries: int

    def first(self, count: int) -> list[tuple[float, float]]:
        """The bounds of the first *count* retries (at most *retries*)."""
        return self.pairs[:count]

    def last(self) -> tuple[float, float]:
        """The bounds of the last retry."""
        return self.pairs[-1]

    def longest(self) -> list[tuple[float, int]]:
        """Each retry's longest sleep, as (seconds, how many retries sleep that long at most)."""
        if not self.pairs:
            return []
        extra = self.retries - len(self.pairs)
        return [(high, 1) for _, high in self.pairs] + [(self.pairs[-1][1], extra)]


def largest(values: Iterable[tuple[float, int]], count: int) -> float:
    """The sum of the *count* largest values, each given as (value, how many times)."""
    total = 0.0
    for value, times in sorted(values, reverse=True):
        if count <= 0:
            break
        taken = min(times, count)
        total += value * taken
        count -= taken
    return total


def backoff_bounds(backoff: _backoff.Backoff, retries: int) -> Sleeps | None:
    """
    Return the (shortest, longest) sleep before each of *retries* retries, or `None` if unknown.

    Exact for the builtin curves and jitters: each builtin jitter grows with
    its random draw, so pinning the draw to 0 and to 1 gives the bounds. With
    the previous delay it grows too, except at 0: `decorrelated` reads a
    previous delay of 0 as "none yet" and allows up to 3x the curve. So each
    bound is taken from both previous extremes (a sleep of 0 then 1 s may last
    3 s). A backoff of your own is not guessed at. The cost does not grow
    past `_EXACT_RETRIES` retries, however many there are.
    """
    if not _is_builtin(backoff) or retries < 1:
        return Sleeps([], 0) if retries < 1 else None
    low_rng, high_rng = _Pinned(0.0), _Pinned(1.0)
    pairs: list[tuple[float, float]] = []
    low = high = 0.0
    for attempt in range(1, min(retries, _EXACT_RETRIES) + 1):
        low, high = (
            float(min(backoff(attempt, low, low_rng), backoff(attempt, high, low_rng))),
            float(max(backoff(attempt, high, high_rng), backoff(attempt, low, high_rng))),
        )
        pairs.append((low, high))
    growing = isinstance(backoff, _backoff.linear) and backoff.max is None and backoff.step > 0
    if retries > _EXACT_RETRIES and growing:
        return None  # still growing: not worth a closed form here
    return Sleeps(pairs, retries)


def span(low: float, high: float) -> str:
    """Return ``"0.75-1.25 s"``, or ``"1 s"`` when both ends are equal."""
    if low == high:
        return seconds(high)
    return f"{seconds_text(low, 6)}-{seconds(high)}"


# --- explain ----------------------------------------------------------------------


def worst_case(
    policies: tuple[Policy, ...], call: float | None, *, retry_after: bool = True
) -> float | None:
    """Return `Pipeline.worst_case` of *policies*: each `Description.bound`, innermost first."""
    bound = call
    for policy in reversed(policies):
        bound = describe(policy)[0].bound(bound, retry_after=retry_after)
    return bound


def _render(description: Description, head: str, indent: str) -> list[str]:
    lines = [f"{head}{description.title}"]
    lines.extend(f"{indent}{line}" if line else "" for line in description.details)
    return lines


# --- timeline ---------------------------------------------------------------------

_WIDTH: Final = 78
"""Columns of the timeline, its labels included: 80, less room for an indent."""
_ROWS: Final = 13
"""Rows of steps drawn; past this, the middle ones are elided."""


def _axis(end: float, scale: float, room: int) -> str:
    """Round ticks from 0 to *end* (at most 6) in *room* columns, none overlapping the next."""
    step = 10.0 ** math.floor(math.log10(end))
    for factor in (0.1, 0.2, 0.5, 1.0):
        if end / (step * factor) <= 5:
            step *= factor
            break
    cells = [" "] * room
    free = 0
    for n in range(int(end / step + 1e-9) + 1):
        at = n * step
        column = round(at / scale)
        text = f"{seconds_text(at, 6)} s"
        if column >= free and column + len(text) <= len(cells):
            cells[column : column + len(text)] = text
            free = column + len(text) + 1
    return "".join(cells).rstrip()


def _row(label: str, width: int, cells: list[str]) -> str:
    return f"  {label:<{width}}{''.join(cells)}".rstrip()


def timeline(policies: tuple[Policy, ...]) -> list[str]:
    """
    Draw the worst case of one call as a timeline: runs, waits (their jitter), the deadline.

    The first policy whose `Description` has *waits* (a Retry) sets the
    schedule: its runs each take what the policies inside it allow at most
    (their `worst_case`), its waits their longest, and the limits of the
    policies outside it make the deadline. ASCII, at most 78 columns; no lines
    when no policy has waits.
    """
    found = [describe(policy)[0] for policy in policies]
    at = next((i for i, d in enumerate(found) if d.waits and d.attempts > 1), None)
    if at is None:
        return []
    retry = found[at]
    waits = retry.waits or ()
    run = worst_case(policies[at + 1 :], None, retry_after=False)
    limits = [d.limit for d in found[:at] if d.limit is not None]
    deadline = min(limits) if limits else None
    # The steps: (kind, start, shortest end, end); a run cut at the deadline ends there.
    steps: list[tuple[str, float, float, float]] = []
    ending = ""
    t = 0.0
    for number in range(1, min(retry.attempts, _EXACT_RETRIES) + 1):
        end = t + (run or 0.0)
        if deadline is not None and end > deadline:
            steps.append(("cut", t, deadline, deadline))
            ending = f"attempt {number} is cut at the deadline, {seconds(deadline)}"
            break
        steps.append(("run", t, end, end))
        t = end
        if number == retry.attempts:
            ending = f"the last attempt ends by {seconds(t)}"
            break
        low, high = waits[min(number, len(waits)) - 1]
        if deadline is not None and t + high >= deadline:
            ending = (
                f"gives up at {seconds(t)}: a wait of up to {seconds(high)} would end "
                f"after the deadline, {seconds(deadline)}"
            )
            break
        if high > 0:
            steps.append(("wait", t, t + low, t + high))
        t += high
    end = max(t, steps[-1][3], deadline or 0.0)
    if end <= 0:
        return []
    labels = []
    runs = 0
    for kind, start, shortest, finish in steps:
        if kind == "wait":
            labels.append(f"wait {span(shortest - start, finish - start)}")
        else:
            runs += 1
            labels.append(f"attempt {runs}" + (" (cut)" if kind == "cut" else ""))
    width = max(len(label) for label in labels) + 2
    columns = min(56, _WIDTH - 2 - width - 6)  # room after the last column for its label
    scale = end / (columns - 1)
    deadline_at = None if deadline is None else round(deadline / scale)
    rows = []
    for label, (kind, start, shortest, finish) in zip(labels, steps, strict=True):
        cells = [" "] * columns
        first = min(round(start / scale), columns - 1)
        last = max(first + 1, round(finish / scale))
        middle = max(first, round(shortest / scale))
        if kind == "wait" and finish > shortest:
            middle = min(middle, last - 1)  # a jitter narrower than a column still shows
        for column in range(first, min(last, columns)):
            if kind != "wait":
                cells[column] = "#"
            else:
                cells[column] = "-" if column < middle or shortest == finish else "~"
        if deadline_at is not None and cells[deadline_at] == " ":
            cells[deadline_at] = ":"
        rows.append(_row(label, width, cells))
    if len(rows) > _ROWS:
        rows = [*rows[: _ROWS - 3], _row("...", width, []), *rows[-2:]]
    if run is None:
        title = "Timeline of the worst case (each wait its longest):"
        legend = ["# an attempt (no limit: drawn as a mark)"]
    else:
        title = "Timeline of the worst case (attempts to their limit, waits their longest):"
        legend = [f"# an attempt, up to {seconds(run)}"]
    legend.append("- a wait")
    if any(kind == "wait" and shortest < finish for kind, _, shortest, finish in steps):
        legend.append("~ its jitter (the wait ends in it)")
    if deadline is not None:
        legend.append(f": the deadline, {seconds(deadline)}")
    lines = [title, *rows, _row("", width, list(_axis(end, scale, _WIDTH - 2 - width)))]
    text = "  "
    for part in legend:
        if len(text) + len(part) > _WIDTH:
            lines.append(text.rstrip())
            text = "  "
        text += part + "   "
    lines.append(text.rstrip())
    lines.extend(f"  {line}" for line in textwrap.wrap(ending, _WIDTH - 2))
    lines.append("  a server's Retry-After may lengthen each wait")
    return lines


def explain(policies: tuple[Policy, ...]) -> str:
    """Return the text of `Pipeline.explain` for *policies*, outermost first."""
    found = [describe(policy) for policy in policies]
    lines: list[str] = []
    if not found:
        lines.append("compose(): no policy; a call runs as it is")
    elif len(found) == 1:
        lines.extend(_render(found[0][0], "", "  "))
    else:
        lines.append(f"compose() of {len(found)} policies, outermost first:")
        for n, (description, _) in enumerate(found, 1):
            head = f"{n}. "
            lines.extend(_render(description, head, " " * (len(head) + 2)))
    runs = 1
    for description, _ in found:
        runs *= description.attempts
    lines.append("")
    lines.append("Worst case of one call:")
    lines.append(f"  runs of the function: at most {runs}")
    sleeps = worst_case(policies, 0.0, retry_after=False)
    waits = worst_case(policies, 0.0)
    if runs > 1 or sleeps != 0.0 or waits != 0.0:
        text = "no bound" if sleeps is None else f"at most {seconds(sleeps)}"
        if waits != sleeps:
            text += "; " + ("no bound" if waits is None else f"at most {seconds(waits)}")
            text += " if the server asks for waits (Retry-After)"
        lines.append(f"  sleeps: {text}")
    total = worst_case(policies, None, retry_after=False)
    total_waits = worst_case(policies, None)
    if total is None:
        lines.append(
            "  total time: no bound: nothing limits how long a run of the function takes "
            "(add a Timeout: inside a Retry for each attempt, around it for the whole call)"
        )
    else:
        text = f"at most {seconds(total)}"
        if total_waits != total:
            text += "; " + (
                "no bound" if total_waits is None else f"at most {seconds(total_waits)}"
            )
            text += " with Retry-After waits"
        lines.append(f"  total time: {text}")
        lines.append(
            "  (each run assumed to end by its deadline: async calls are cancelled at it; "
            "sync calls cooperate, see Timeout)"
        )
    unknown = [description.title for description, given in found if not given]
    if unknown:
        lines.append(
            "  policies without describe() are assumed to add neither runs nor time: "
            + ", ".join(unknown)
        )
    drawing = timeline(policies)
    if drawing:
        lines.append("")
        lines.extend(drawing)
    return "\n".join(lines)
