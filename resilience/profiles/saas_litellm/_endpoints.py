"""
The endpoint map: method and path template to timeout and idempotency.

Matching is by method and whole path segments, never by substring: a template
matches the *end* of a URL's path segment by segment (so a base URL may carry
a prefix such as ``/v1``), ``{job_id}`` matches exactly one segment, and when
several templates match, the most specific wins (more literal segments, then
more segments). A ``{job_id}`` that is not a UUID, and a job ``status`` filter
that is not upper case, are refused on the client: the server would answer a
plain-text 500 that no retry can fix.

A lookup tries only the rows that can match the path's last segment (an index
built once per map), so its cost does not grow with the map.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Final, TypeAlias, final
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

__all__ = ["ENDPOINTS", "FAMILIES", "Endpoint", "EndpointMap", "endpoint", "family_of"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

FAMILIES: Final = frozenset({"jobs", "teams", "credits"})
"""Route families named by the segment after ``/api/``; anything else is ``"other"``."""


def _check_timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be seconds (a number), got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {value!r}")


def _upper(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"method must be a non-empty str, got {value!r}")
    return value.upper()


def _check_template(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not (value == "*" or value.startswith("/")):
        raise ValueError(f"template must be '*' or a path starting with '/', got {value!r}")


@final
@attrs.frozen
class Endpoint:
    """
    One row of the endpoint map.

    Attributes:
        method: The HTTP method, upper case (``"*"`` in the catch-all rows).
        template: The path template, such as ``"/api/jobs/{job_id}/llm-call"``,
            or ``"*"`` for the catch-all rows (other GETs, anything else).
        timeout: Seconds allowed for one attempt; for a stream, for the whole
            stream and for each gap between events.
        idempotent: Whether repeating the request is harmless, so that an
            ambiguous failure (a read timeout, a connection dropped after
            sending) may be retried.
        stream: Whether the endpoint answers with server-sent events.
        duplicate: What a repeated request does on the server, for people.
        paid: Whether the request makes a paid provider call (the LLM calls):
            it then has a breaker per model alias, goes through the paid-call
            bulkhead, and a plain-text 500 from it is ambiguous. Default: `False`.
    """

    method: str = attrs.field(converter=_upper)
    template: str = attrs.field(validator=_check_template)
    timeout: float = attrs.field(validator=_check_timeout)
    idempotent: bool
    stream: bool = False
    duplicate: str = attrs.field(default="", eq=False)
    paid: bool = attrs.field(default=False, kw_only=True)
    _segments: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    # Precomputed for matching: (index from the end, literal) and (index, name).
    _literals: tuple[tuple[int, str], ...] = attrs.field(init=False, repr=False, eq=False)
    _params: tuple[tuple[int, str], ...] = attrs.field(init=False, repr=False, eq=False)
    _count: int = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        segments = () if self.template == "*" else tuple(self.template.strip("/").split("/"))
        object.__setattr__(self, "_segments", segments)
        count = len(segments)
        literals = []
        params = []
        for n, segment in enumerate(segments):
            if segment.startswith("{") and segment.endswith("}"):
                params.append((n - count, segment[1:-1]))
            else:
                literals.append((n - count, segment))
        # The last segment first: it differs most between rows.
        object.__setattr__(self, "_literals", tuple(reversed(literals)))
        object.__setattr__(self, "_params", tuple(params))
        object.__setattr__(self, "_count", count)

    def _match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        if self.method != "*" and self.method != method:
            return None
        if self.template == "*":
            return {}
        if len(parts) < len(self._segments):
            return None
        for at, literal in self._literals:
            if parts[at] != literal:
                return None
        params: dict[str, str] = {}
        for at, name in self._params:
            part = parts[at]
            if not part:
                return None
            params[name] = part
        return params

    def _specificity(self) -> tuple[bool, int, int, bool]:
        literal = sum(1 for s in self._segments if not s.startswith("{"))
        return (self.template != "*", literal, len(self._segments), self.method != "*")


def _to_rows(rows: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    found = tuple(rows)
    for row in found:
        if not isinstance(row, Endpoint):
            raise TypeError(f"endpoints must be Endpoint rows, got {type(row).__name__}: {row!r}")
    return found


def _fast_path(path_or_url: str) -> str:
    """`_path_of` without `urlsplit` for the common forms: a bare path, an http(s) URL."""
    if path_or_url[:1] == "/" and path_or_url[:2] != "//":
        start = 0
    else:
        scheme = path_or_url.find("://")
        start = -1 if scheme <= 0 else path_or_url.find("/", scheme + 3)
        if start == -1:
            return _path_of(path_or_url)
    query = path_or_url.find("?")
    fragment = path_or_url.find("#")
    if query == -1 and fragment == -1:
        return path_or_url[start:] if start else path_or_url
    if -1 < query < start or -1 < fragment < start:
        return _path_of(path_or_url)  # a query or fragment before any path
    end = min(at for at in (query, fragment) if at != -1)
    return path_or_url[start:end] or "/"


def _path_of(path_or_url: str) -> str:
    if not isinstance(path_or_url, str):
        raise TypeError(f"path_or_url must be a str, got {type(path_or_url).__name__}")
    return urlsplit(path_or_url).path or "/"


@final
@attrs.frozen
class EndpointMap:
    """
    An ordered set of `Endpoint` rows, looked up by method and path.

    Immutable: derive variants with `scaled` or by building a new map from
    ``list(ENDPOINTS)``.

    Attributes:
        rows: The rows, as given. Catch-alls use ``template="*"``: ``method="GET"`` for
            every other GET, ``method="*"`` for anything else (its
            ``idempotent`` is then decided by the request's method).
    """

    rows: tuple[Endpoint, ...] = attrs.field(converter=_to_rows)
    _ordered: tuple[Endpoint, ...] = attrs.field(init=False, repr=False, eq=False)
    # Candidates by last path segment: rows ending in that literal, then rows ending
    # in a parameter, then the catch-alls, most specific first. "" holds the rows
    # for any other last segment. Catch-all copies per method are cached too.
    _by_last: dict[str, tuple[Endpoint, ...]] = attrs.field(init=False, repr=False, eq=False)
    _any: dict[str, Endpoint] = attrs.field(init=False, repr=False, eq=False)
    # (method, last segment) -> the plans of its candidates (see _plan).
    _by_method: dict[tuple[str, str], tuple[_Plan, ...]] = attrs.field(
        init=False, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        ordered = tuple(sorted(self.rows, key=lambda row: row._specificity(), reverse=True))
        object.__setattr__(self, "_ordered", ordered)
        literals = {
            row._segments[-1]
            for row in ordered
            if row._segments and not row._segments[-1].startswith("{")
        }
        by_last: dict[str, tuple[Endpoint, ...]] = {}
        for last in (*literals, ""):
            by_last[last] = tuple(
                row
                for row in ordered
                if not row._segments
                or row._segments[-1].startswith("{")
                or row._segments[-1] == last
            )
        object.__setattr__(self, "_by_last", by_last)
        object.__setattr__(self, "_any", {})
        object.__setattr__(self, "_by_method", {})

    def _candidates(self, method: str, last: str) -> tuple[_Plan, ...]:
        plans = tuple(_plan(row) for row in self._by_last[last] if row.method in ("*", method))
        if len(self._by_method) < 1024:  # methods are few; a bound all the same
            self._by_method[(method, last)] = plans
        return plans

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def match(self, method: str, path_or_url: str) -> Endpoint:
        """
        Return the endpoint of a request; see `endpoint`.

        Raises:
            ValueError: If a ``{job_id}`` segment is not a UUID, or nothing
                matches (a map without catch-all rows).
        """
        return self.lookup(method, path_or_url)[0]

    def lookup(self, method: str, path_or_url: str) -> tuple[Endpoint, str]:
        """
        Return the endpoint of a request and the request's path (see `match`).

        Raises:
            ValueError: As `match`.
        """
        if type(method) is not str or not method.isupper():
            method = _upper(method)
        if not isinstance(path_or_url, str):
            raise TypeError(f"path_or_url must be a str, got {type(path_or_url).__name__}")
        path = _fast_path(path_or_url)
        if "%" in path:
            parts = [unquote(part) for part in path.strip("/").split("/")]
        else:
            parts = path.strip("/").split("/")
        last = parts[-1]
        if last not in self._by_last:
            last = ""  # no row ends in it (a job id): the rows ending in a parameter
        plans = self._by_method.get((method, last))
        if plans is None:
            plans = self._candidates(method, last)
        count = len(parts)
        for row, need, literals, params, direct in plans:
            if count < need:
                continue
            for at, literal in literals:
                if parts[at] != literal:
                    break
            else:
                for at, job_id in params:
                    part = parts[at]
                    if not part:
                        break
                    if job_id and _CANONICAL_UUID.fullmatch(part) is None:
                        _check_job_id(part, method, row.template)
                else:
                    if direct:
                        return row, path
                    return self._found(row, method, path_or_url), path
        raise ValueError(f"no endpoint matches {method} {path}")

    def _found(self, row: Endpoint, method: str, path_or_url: str) -> Endpoint:
        check = _QUERY_CHECKS.get(row.template)
        if check is not None:
            check(path_or_url, method, row.template)
        if row.method != "*":
            return row
        found = self._any.get(method)
        if found is None or found.template != row.template:
            found = attrs.evolve(row, method=method, idempotent=method in IDEMPOTENT_METHODS)
            if len(self._any) < 64:
                self._any[method] = found
        return found

    def scaled(self, factor: float) -> EndpointMap:
        """
        Return a copy whose timeouts are multiplied by *factor* (for demos and tests).

        Raises:
            ValueError: If *factor* is not a finite number > 0.
        """
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise TypeError(f"factor must be a number, got {type(factor).__name__}")
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
        return EndpointMap(attrs.evolve(row, timeout=row.timeout * factor) for row in self.rows)


_Plan: TypeAlias = (
    "tuple[Endpoint, int, tuple[tuple[int, str], ...], tuple[tuple[int, bool], ...], bool]"
)


def _plan(row: Endpoint) -> _Plan:
    """
    What `EndpointMap.lookup` tests of a row, flattened.

    (row, segments it needs, (index, literal) pairs, (index, is a job id) pairs,
    whether a match is the row itself: not a catch-all, no query to check).
    """
    params = tuple((at, name == "job_id") for at, name in row._params)
    direct = row.method != "*" and row.template not in _QUERY_CHECKS
    return (row, row._count, row._literals, params, direct)


def family_of(found: Endpoint, path_or_url: str) -> str:
    """
    Return the route family of a request: ``"llm"`` for a paid endpoint, else by path.

    ``"jobs"``, ``"teams"`` or ``"credits"`` when the segment after the path's
    ``api`` segment is one of those (`FAMILIES`), else ``"other"``.
    """
    if found.paid:
        return "llm"
    parts = _path_of(path_or_url).split("/")
    for n in range(len(parts) - 2, -1, -1):
        if parts[n] == "api":
            name = parts[n + 1]
            return name if name in FAMILIES else "other"
    return "other"


_JOB_STATUSES: Final = ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED")


def _check_status_filter(path_or_url: str, method: str, template: str) -> None:
    query = urlsplit(path_or_url).query if "?" in path_or_url else ""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "status" and value != value.upper():
            raise ValueError(
                f"status filter must be upper case ({', '.join(_JOB_STATUSES)}), got "
                f"{value[:32]!r} ({method} {template}); the server answers a plain-text 500 "
                "to a lower-case one, which no retry can fix"
            )


_QUERY_CHECKS: Final = {"/api/teams/{team_id}/jobs": _check_status_filter}


_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _check_job_id(job_id: str, method: str, template: str) -> None:
    if _CANONICAL_UUID.fullmatch(job_id) is not None:
        return  # the usual form; uuid.UUID takes others too (braces, no hyphens, urn:)
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise ValueError(
            f"job_id must be a UUID, got {job_id[:64]!r} ({method} {template}); the server "
            "would answer a plain-text 500 that no retry can fix"
        ) from None


_JOB: Final = "/api/jobs/{job_id}"

ENDPOINTS: Final = EndpointMap(
    [
        Endpoint("POST", "/api/jobs/create", 10.0, True, duplicate="an orphan pending job"),
        Endpoint("GET", _JOB, 10.0, True, duplicate="nothing"),
        Endpoint(
            "POST",
            f"{_JOB}/llm-call",
            60.0,
            False,
            duplicate="another paid provider call",
            paid=True,
        ),
        Endpoint(
            "POST",
            f"{_JOB}/complete",
            30.0,
            True,
            duplicate="nothing, one at a time (two concurrent ones can both charge)",
        ),
        Endpoint(
            "POST",
            "/api/jobs/create-and-call",
            60.0,
            False,
            duplicate="a new job, a new paid call, a new credit charge",
            paid=True,
        ),
        Endpoint(
            "POST",
            f"{_JOB}/llm-call-stream",
            120.0,
            False,
            stream=True,
            duplicate="another paid provider call",
            paid=True,
        ),
        Endpoint(
            "POST",
            "/api/jobs/create-and-call-stream",
            120.0,
            False,
            stream=True,
            duplicate="a new job, a new paid call, a new credit charge",
            paid=True,
        ),
        # Rows with the values of the catch-alls below, so that their job id is
        # checked like every other one.
        Endpoint("GET", f"{_JOB}/costs", 10.0, True, duplicate="nothing"),
        Endpoint("PATCH", f"{_JOB}/metadata", 30.0, False, duplicate="the metadata written again"),
        # Its lower-case status filter is refused before sending (see _QUERY_CHECKS).
        Endpoint("GET", "/api/teams/{team_id}/jobs", 10.0, True, duplicate="nothing"),
        Endpoint("GET", "*", 10.0, True, duplicate="nothing"),
        Endpoint("*", "*", 30.0, False, duplicate="depends on the method"),
    ]
)
"""The profile's endpoint map (DESIGN.md's table)."""


def endpoint(method: str, path_or_url: str, *, endpoints: EndpointMap = ENDPOINTS) -> Endpoint:
    """
    Return the endpoint of a request: its template, timeout, idempotency and whether it streams.

    Matched by method and whole path segments, most specific first; a URL's
    host and query string are ignored, and a base path before ``/api`` is
    allowed. ``GET /api/jobs/create`` is "get job ``create``", as on the
    server, and so is refused (not a UUID).

    Args:
        method: The HTTP method, any case.
        path_or_url: A path (``"/api/jobs/create"``) or an absolute URL.
        endpoints: The map to look in. Default: `ENDPOINTS`.

    Returns:
        The matching `Endpoint`. For the catch-all row, a copy carrying the
        request's method, idempotent when the method is (GET, HEAD, OPTIONS,
        TRACE, PUT, DELETE).

    Raises:
        ValueError: If a ``{job_id}`` segment is not a UUID, or the ``status``
            filter of ``GET /api/teams/{team_id}/jobs`` is not upper case.

    Example::

        >>> endpoint("POST", "https://api.example.com/api/jobs/create").timeout
        10.0
    """
    return endpoints.match(method, path_or_url)


def all_rows(endpoints: Iterable[Endpoint] = ENDPOINTS) -> list[Endpoint]:
    """Return the rows of a map, in order (for `explain`)."""
    return list(endpoints)
