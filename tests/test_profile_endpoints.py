"""The endpoint map: method and path template, most specific wins, never a substring."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilience as rs
from resilience.profiles import saas_litellm as saas

JOB = "3f0a6a4e-5f7b-4f6e-9d1c-0a0b0c0d0e0f"


@pytest.mark.parametrize(
    ("method", "path", "template", "timeout", "idempotent", "stream"),
    [
        ("POST", "/api/jobs/create", "/api/jobs/create", 10.0, True, False),
        ("GET", f"/api/jobs/{JOB}", "/api/jobs/{job_id}", 10.0, True, False),
        ("POST", f"/api/jobs/{JOB}/llm-call", "/api/jobs/{job_id}/llm-call", 60.0, False, False),
        ("POST", f"/api/jobs/{JOB}/complete", "/api/jobs/{job_id}/complete", 30.0, True, False),
        ("POST", "/api/jobs/create-and-call", "/api/jobs/create-and-call", 60.0, False, False),
        (
            "POST",
            f"/api/jobs/{JOB}/llm-call-stream",
            "/api/jobs/{job_id}/llm-call-stream",
            120.0,
            False,
            True,
        ),
        (
            "POST",
            "/api/jobs/create-and-call-stream",
            "/api/jobs/create-and-call-stream",
            120.0,
            False,
            True,
        ),
        ("GET", f"/api/jobs/{JOB}/costs", "/api/jobs/{job_id}/costs", 10.0, True, False),
        ("GET", "/health", "*", 10.0, True, False),
        (
            "PATCH",
            f"/api/jobs/{JOB}/metadata",
            "/api/jobs/{job_id}/metadata",
            30.0,
            False,
            False,
        ),
        ("PUT", "/api/other", "*", 30.0, True, False),
        ("DELETE", "/api/other", "*", 30.0, True, False),
        ("POST", "/api/other", "*", 30.0, False, False),
    ],
)
def test_each_row(
    method: str, path: str, template: str, timeout: float, idempotent: bool, stream: bool
) -> None:
    """Every row of DESIGN.md's endpoint table, and the catch-alls."""
    found = saas.endpoint(method, path)
    assert (found.template, found.timeout, found.idempotent, found.stream) == (
        template,
        timeout,
        idempotent,
        stream,
    )
    assert found.method == method


def test_methods_any_case_and_absolute_urls() -> None:
    """Methods match in any case; a URL's host and query string are ignored."""
    found = saas.endpoint("post", f"https://api.example.com:8443/api/jobs/{JOB}/llm-call?x=1")
    assert found.template == "/api/jobs/{job_id}/llm-call"


def test_base_path_prefix_is_allowed() -> None:
    """A base URL with a path prefix still matches: templates match the end of the path."""
    assert saas.endpoint("POST", "https://h/v1/api/jobs/create").template == "/api/jobs/create"


def test_most_specific_wins() -> None:
    """POST /api/jobs/create is the create endpoint, not a job id; create-and-call its own."""
    assert saas.endpoint("POST", "/api/jobs/create").timeout == 10.0
    assert saas.endpoint("POST", "/api/jobs/create-and-call").timeout == 60.0


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/createx",
        "/api/jobs/create/extra",
        f"/api/jobs/{JOB}/llm-callback",
        f"/api/jobs/{JOB}/llm-call/extra",
        "/api/jobs/create-and-call-streaming",
        "/xapi/jobs/create",
    ],
)
def test_never_a_substring(path: str) -> None:
    """Paths that merely contain a template are not that endpoint (the docs' lookup is)."""
    assert saas.endpoint("POST", path).template == "*"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/create"),
        ("POST", "/api/jobs/not-a-uuid/llm-call"),
        ("POST", "/api/jobs/123/complete"),
        ("GET", "/api/jobs/%20"),
        ("GET", "/api/jobs/create-and-call"),
        ("GET", "/api/jobs/nope/costs"),
        ("PATCH", "/api/jobs/nope/metadata"),
    ],
)
def test_job_id_must_be_a_uuid(method: str, path: str) -> None:
    """A job id that is not a UUID fails fast, saying why (the server would answer a plain 500)."""
    with pytest.raises(ValueError, match="job_id must be a UUID") as caught:
        saas.endpoint(method, path)
    assert "plain-text 500" in str(caught.value)


def test_pipeline_fails_fast_on_a_bad_job_id() -> None:
    """The pipeline factory refuses a bad job id before anything could be sent."""
    with pytest.raises(ValueError, match="job_id must be a UUID"):
        saas.pipeline("POST", "http://h/api/jobs/nope/llm-call")


def test_scaled_map() -> None:
    """scaled() multiplies every timeout, keeping the rest."""
    fast = saas.ENDPOINTS.scaled(0.5)
    assert fast.match("POST", f"/api/jobs/{JOB}/llm-call").timeout == 30.0
    assert fast.match("GET", "/health").timeout == 5.0
    assert len(fast) == len(saas.ENDPOINTS)
    with pytest.raises(ValueError, match="factor"):
        saas.ENDPOINTS.scaled(0)


def test_bad_rows_fail_at_construction() -> None:
    """Bad rows are refused when the map is built, naming the parameter."""
    with pytest.raises(ValueError, match="timeout"):
        saas.Endpoint("GET", "/x", 0.0, True)
    with pytest.raises(ValueError, match="template"):
        saas.Endpoint("GET", "x", 1.0, True)
    with pytest.raises(TypeError, match="Endpoint rows"):
        saas.EndpointMap(["GET /x"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("timeout", "expected"), [(None, 60.0), (5.0, 5.0), (500.0, 60.0)], ids=str
)
def test_per_call_timeout_lowers_never_raises(timeout: float | None, expected: float) -> None:
    """The pipeline's Timeout is the endpoint's, lowered (never raised) by timeout=."""
    pipeline = saas.pipeline("POST", f"http://h/api/jobs/{JOB}/llm-call", timeout=timeout)
    last = pipeline.policies[-1]
    assert isinstance(last, rs.Timeout)
    assert last.seconds == expected


_ROWS = [row for row in saas.ENDPOINTS if row.template != "*"]
_PREFIX = st.lists(st.sampled_from(["v1", "api", "jobs", "proxy"]), max_size=3)


@given(row=st.sampled_from(_ROWS), prefix=_PREFIX, job=st.uuids())
def test_each_template_matches_its_own_paths(
    row: saas.Endpoint, prefix: list[str], job: object
) -> None:
    """A path made of a row's template (any job UUID, any base-path prefix) finds that row."""
    tail = row.template.strip("/").replace("{job_id}", str(job))
    path = "/" + "/".join([*prefix, tail])
    found = saas.endpoint(row.method, f"https://h{path}?q=1")
    assert (found.method, found.template) == (row.method, row.template)


def _expected(method: str, parts: list[str]) -> tuple[saas.Endpoint | None, str | None]:
    """Reference matcher: (the most specific row whose template equals the path's last
    segments, or None; that path's job id segment, if the template has one)."""
    best: tuple[tuple[int, int], saas.Endpoint, str | None] | None = None
    for row in _ROWS:
        segments = row.template.strip("/").split("/")
        if row.method != method or len(parts) < len(segments):
            continue
        tail = parts[len(parts) - len(segments) :]
        if not all(
            (segment.startswith("{") and part != "") or segment == part
            for segment, part in zip(segments, tail, strict=True)
        ):
            continue
        rank = (sum(not segment.startswith("{") for segment in segments), len(segments))
        job = tail[segments.index("{job_id}")] if "{job_id}" in segments else None
        if best is None or rank > best[0]:
            best = (rank, row, job)
    return (None, None) if best is None else (best[1], best[2])


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


_SEGMENT = st.sampled_from(["api", "jobs", "create", "llm-call", "complete", "costs", JOB, "x", ""])


@st.composite
def _near_paths(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A method and path segments close to a row: a prefix, then its segments, some swapped."""
    row = draw(st.sampled_from(_ROWS))
    parts = draw(st.lists(_SEGMENT, max_size=2))
    for segment in row.template.strip("/").split("/"):
        exact = JOB if segment == "{job_id}" else segment
        parts.append(exact if draw(st.integers(0, 3)) else draw(_SEGMENT))
    method = row.method if draw(st.integers(0, 3)) else draw(st.sampled_from(["GET", "POST"]))
    return method, parts[draw(st.integers(0, 1)) :]


_ANY_PATHS = st.tuples(st.sampled_from(["GET", "POST", "PATCH"]), st.lists(_SEGMENT, max_size=6))


@given(request=st.one_of(_near_paths(), _ANY_PATHS))
def test_matches_are_whole_segments(request: tuple[str, list[str]]) -> None:
    """Any path finds what a plain reference matcher expects.

    The most specific row whose template equals the path's last segments
    (refused if its job id is not a UUID), else a catch-all: never a row that
    merely contains the path, or a substring of it.
    """
    method, parts = request
    path = "/" + "/".join(parts)
    # Parsed as a URL, as endpoint() does: "//api/jobs/create" names the host "api".
    row, job = _expected(method, (urlsplit(path).path or "/").strip("/").split("/"))
    if row is not None and job is not None and not _is_uuid(job):
        with pytest.raises(ValueError, match="job_id must be a UUID"):
            saas.endpoint(method, path)
        return
    found = saas.endpoint(method, path)
    assert found.template == ("*" if row is None else row.template)
