"""
`explain`: the profile's retry table, timeout map and worst-case schedule, as text.

The bounds come from `resilience.Pipeline.worst_case` on the profile's own
policies, and the last section is `resilience.Pipeline.explain` of one
request's pipeline: the numbers here are the engine's, not a second copy of
its arithmetic.
"""

from __future__ import annotations

import random
import textwrap

import attrs

import resilience as rs

from ._classify import LLM_CALL_FAILED, PERMANENT_CAUSES
from ._policy import (
    FAILURE_THRESHOLD,
    HALF_OPEN_MAX_CALLS,
    PAID_CALL_WAIT,
    REPROBE_AFTER,
    RESET_TIMEOUT,
    Options,
    breaker,
    paid_calls,
)

__all__ = ["explain", "schedule"]

RETRY_TABLE = (
    ("outcome", "retry", "trips breaker", "exception raised"),
    ("400", "no", "no", "BadRequestError"),
    ("401", "no", "no", "AuthenticationError"),
    ("403, detail mentions credits", "no", "no", "InsufficientCreditsError"),
    ("403 other (suspended, paused, team, model)", "no", "no", "PermissionDeniedError"),
    ("404", "no", "no", "NotFoundError"),
    ("422", "no", "no", "ValidationError (.errors)"),
    ("429", "yes, Retry-After is a floor", "yes", "RateLimitError (.retry_after)"),
    ("500 naming a permanent cause (below)", "no", "no", "ServerError"),
    (f"500 '{LLM_CALL_FAILED}: ...' (the server tried 9 times)", "no", "yes", "ServerError"),
    ("other 500 (plain text: ambiguous)", "idempotent endpoints only", "yes", "ServerError"),
    ("503", "yes", "yes", "ServerError"),
    ("502, 504 (a gateway answered)", "idempotent endpoints only", "yes", "ServerError"),
    ("connect error / timeout (never sent)", "yes", "yes", "APIConnectionError / APITimeoutError"),
    (
        "read timeout / drop after sending",
        "idempotent endpoints only",
        "yes",
        "APITimeoutError / APIConnectionError",
    ),
    ("in-band error after HTTP 200 (streams)", "no", "unless permanent", "StreamError"),
)


class _Extreme(random.Random):
    """A random source pinned to one end of [0, 1), to read a jitter's bounds."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def _table(rows: list[tuple[str, ...]] | tuple[tuple[str, ...], ...]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _seconds(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} s"


def schedule(settings: Options | None = None) -> list[tuple[float, float]]:
    """
    Return the (shortest, longest) backoff sleep before each retry, ignoring Retry-After.

    Args:
        settings: The profile options. Default: the profile's defaults.

    Returns:
        One pair per retry: ``attempts - 1`` pairs, in seconds.
    """
    opts = settings if settings is not None else Options()
    pairs: list[tuple[float, float]] = []
    low_prev = high_prev = 0.0
    for attempt in range(1, opts.attempts):
        low = float(opts.backoff(attempt, low_prev, _Extreme(0.0)))
        high = float(opts.backoff(attempt, high_prev, _Extreme(1.0)))
        pairs.append((low, high))
        low_prev, high_prev = low, high
    return pairs


def explain(settings: Options | None = None) -> str:
    """
    Return the profile as text: the retry table, the timeout map, and the worst-case schedule.

    This is what ``python -m resilience explain saas-litellm`` prints. The
    per-endpoint bounds are `resilience.Pipeline.worst_case` of the profile's
    Retry over each endpoint's Timeout, and the text ends with
    `resilience.Pipeline.explain` of one ``POST /api/jobs/{job_id}/llm-call``
    request's pipeline.

    Args:
        settings: The profile options to explain. Default: the profile's defaults.

    Returns:
        Several plain-text tables.
    """
    opts = settings if settings is not None else Options()
    out: list[str] = []
    out.append("SaaS LiteLLM profile (resilience.profiles.saas_litellm)")
    out.append("")
    out.append("Retry table: what each outcome is, per the server's real behaviour")
    table: tuple[tuple[str, ...], ...] = RETRY_TABLE
    if opts.retry_ambiguous:
        ambiguous = "yes (retry_ambiguous=True)"
        table = tuple(
            (row[0], ambiguous, *row[2:]) if row[1] == "idempotent endpoints only" else row
            for row in RETRY_TABLE
        )
    out.append(_table(table))
    out.append("  permanent causes inside a 500's detail: " + ", ".join(PERMANENT_CAUSES))
    out.append("")
    out.append("Timeout map: method and path template (most specific wins, never a substring)")
    rows: list[tuple[str, ...]] = [("endpoint", "timeout", "idempotent", "a duplicate request")]
    for row in opts.endpoints:
        if row.template == "*":
            name = "other GETs" if row.method == "GET" else "anything else"
            idempotent = "yes" if row.method == "GET" else "by method"
        else:
            name = f"{row.method} {row.template}"
            idempotent = "yes" if row.idempotent else "no"
        timeout = _seconds(row.timeout) + (" total and idle" if row.stream else "")
        rows.append((name, timeout, idempotent, row.duplicate))
    out.append(_table(rows))
    out.append("")
    pairs = schedule(opts)
    cap = opts.max_retry_after
    out.append(f"Retry: {opts.attempts} attempts (the first included); backoff {opts.backoff!r}")
    out.append(
        "  a Retry-After is a floor under the backoff; "
        + (
            f"one above {_seconds(cap)} makes Retry give up at once"
            if cap is not None
            else "no cap"
        )
    )
    out.append(_breaker_line(opts))
    out.append(_bulkhead_line(opts))
    out.append("")
    out.append("Worst-case schedule of one request")
    sched: list[tuple[str, ...]] = [("step", "at most", "at least")]
    for n in range(1, opts.attempts + 1):
        sched.append((f"attempt {n}", "the endpoint's timeout", "-"))
        if n <= len(pairs):
            low, high = pairs[n - 1]
            sched.append((f"sleep before attempt {n + 1}", _seconds(high), _seconds(low)))
    out.append(_table(sched))
    bounds: list[tuple[str, ...]] = [("endpoint", "timeout", "upper bound", "with Retry-After")]
    for row in opts.endpoints:
        name = (
            f"{row.method} {row.template}"
            if row.template != "*"
            else ("other GETs" if row.method == "GET" else "anything else")
        )
        # Retry over the endpoint's Timeout (and a paid call's wait for a slot): the
        # breaker and the translation add no time.
        policies: list[rs.Policy] = [opts.retry(row.idempotent)]
        if row.paid and opts.paid_calls is not None:
            given = opts.paid_calls
            policies.append(given if isinstance(given, rs.Bulkhead) else paid_calls(given))
        request = rs.compose(*policies, rs.Timeout(row.timeout))
        upper = request.worst_case(retry_after=False)
        floors = request.worst_case()
        bounds.append(
            (
                name,
                _seconds(row.timeout),
                "unbounded" if upper is None else _seconds(upper),
                "unbounded" if floors is None else _seconds(floors),
            )
        )
    out.append("")
    out.append(
        "Upper bound on total time: attempts x (timeout + a paid call's wait for a slot) + "
        "the longest sleeps (each attempt is assumed to end within its timeout); a "
        "Retry-After may lengthen "
        f"each sleep up to {_seconds(cap) if cap is not None else 'any length'}"
    )
    out.append(_table(bounds))
    out.append(
        "  streams: the attempts cover the request until the answer starts; the stream "
        "itself then has its own total and idle limits (never retried once it has begun)"
    )
    out.append("")
    if opts.retry_ambiguous:
        out.append(
            "retry_ambiguous=True: read timeouts, drops after sending, 502 and 504 are "
            "retried on every endpoint, paid ones included (a plain 500 too): a retry may "
            "repeat work the server did, and charged for."
        )
    else:
        out.append(
            "Not retried on non-idempotent endpoints (llm-call, create-and-call, the streams): "
            "read timeouts, drops after sending, a plain 500, 502 and 504 — the server may "
            "have done, and charged for, the work. Opt in with retry_ambiguous=True. "
            f"'{LLM_CALL_FAILED}: ...' is never retried: the server already made up to 9 "
            "provider attempts (3 more from the client would make 27)."
        )
    out.append("")
    try:
        example = example_pipeline(opts)
    except ValueError:  # a map of the user's with no row for it
        out.append(f"(no endpoint of this map matches POST {_EXAMPLE}: no example pipeline)")
    else:
        out.append(
            f"The pipeline of one request, as resilience explains it: POST {_EXAMPLE} "
            "(other endpoints differ in timeout, and idempotent ones also retry ambiguous "
            "failures)"
        )
        out.append(textwrap.indent(example.explain(), "  "))
    return "\n".join(out)


def _breaker_line(opts: Options) -> str:
    chosen = opts.breaker
    if chosen is None:
        return "Breaker: none (breaker=None)"
    if isinstance(chosen, rs.CircuitBreaker):
        return f"Breaker: the one given, {chosen.name or 'unnamed'!r}, for every request"
    scope = (
        "one per server (breaker='per-base-url')"
        if chosen == "per-base-url"
        else "one per route family of a server (jobs, teams, credits, other) and one per "
        "model alias for the LLM calls, so that one broken route or model never rejects "
        "calls to the others"
    )
    return (
        f"Breaker: {scope}; opens after {FAILURE_THRESHOLD} consecutive failures, stays open "
        f"{_seconds(RESET_TIMEOUT)}, then {HALF_OPEN_MAX_CALLS} probe decides; a failed probe "
        f"gets another {_seconds(REPROBE_AFTER)} later (the server's first query after its "
        "database returns always fails), then the next one after "
        f"{_seconds(RESET_TIMEOUT)}; counts 429, retryable 5xx, timeouts and connection "
        "errors, never a 4xx"
    )


def _bulkhead_line(opts: Options) -> str:
    chosen = opts.paid_calls
    if chosen is None:
        return "Paid calls: no limit (paid_calls=None)"
    if isinstance(chosen, rs.Bulkhead):
        return f"Paid calls: through the bulkhead given, {chosen!r}"
    return (
        f"Paid calls: at most {chosen} at once per server in the process (the server holds a "
        "database connection for each, from a pool of 15; about 15 slow calls freeze it); "
        f"the others wait, first come first served, up to {_seconds(PAID_CALL_WAIT)}"
    )


_EXAMPLE = "/api/jobs/{job_id}/llm-call"


def example_pipeline(settings: Options | None = None) -> rs.Pipeline:
    """
    Return the pipeline the profile gives ``POST /api/jobs/{job_id}/llm-call``, with a new breaker.

    The breaker and the bulkhead are fresh ones with the profile's settings
    (unless the options name their own), not the shared ones of a server
    (`breaker_for`), so that explaining never creates or reads one.

    Raises:
        ValueError: If the options' map has no row for that request.
    """
    opts = settings if settings is not None else Options()
    fresh: dict[str, object] = {}
    if isinstance(opts.breaker, str):
        fresh["breaker"] = breaker()
    if isinstance(opts.paid_calls, int):
        fresh["paid_calls"] = paid_calls(opts.paid_calls)
    opts = attrs.evolve(opts, **fresh)  # type: ignore[arg-type]
    for row in opts.endpoints:
        if row.method == "POST" and row.template == _EXAMPLE:
            return opts._pipeline("POST", _EXAMPLE, row, None, row.timeout)
    raise ValueError(f"no endpoint of this map matches POST {_EXAMPLE}")
