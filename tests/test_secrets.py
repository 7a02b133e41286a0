"""
Secrets never leave: no key, bearer token or request body in logs, events, reprs or errors.

The main test drives the SaaS LiteLLM emulator's workflows, with every fault
it can inject, through the three clients of the profile, with the root logger
at DEBUG (so urllib3, httpx, httpcore and asyncio log everything they log),
and collects everything that could carry a secret out of the process: every
log record (message, arguments, extras, formatted traceback), every event
(repr, message, log fields), every exception the caller saw (str, repr, args,
notes, formatted traceback, the whole ``__cause__`` / ``__context__`` chain,
and the fields of our own exceptions), and the reprs and ``explain()`` of the
sessions, clients, transports, policies and pipelines. Then it searches all of
that for the virtual key, any emulator key (``sk-`` + 32 hex digits), the
``Authorization`` header value, and markers planted in request bodies.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.demo import run_one
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock, capture_events

from .emulator_helpers import KINDS, Client

BODY_MARKER = "body-marker-" + uuid.uuid4().hex
"""Planted in request bodies, in fields the emulator never quotes back except in a 422."""

FIELD_SECRET = "field-secret-" + uuid.uuid4().hex
"""The value of an ``api_key`` field in a request body."""

WRONG_KEY = "sk-" + uuid.uuid4().hex
"""A key the server does not know: sent, refused with 401."""

ANY_KEY = re.compile(r"sk-[0-9a-f]{32}")
"""Every key the emulator makes (its teams' keys) and WRONG_KEY."""


class Records(logging.Handler):
    """Keeps every record of every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    """Every log record of every logger, the root logger at DEBUG."""
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Everything a formatter, a JSON handler or a log shipper could read from *record*."""
    yield record.getMessage()
    yield repr(record.msg)
    yield repr(record.args)
    for name, value in vars(record).items():
        yield f"{name}={value!r}"
    if record.exc_info and record.exc_info[1] is not None:
        yield logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        yield record.stack_info


def exception_texts(exc: BaseException, seen: set[int] | None = None) -> Iterator[str]:
    """The text of *exc* and of everything it chains, as a traceback or a logger shows it."""
    seen = set() if seen is None else seen
    if id(exc) in seen:
        return
    seen.add(id(exc))
    yield str(exc)
    yield repr(exc)
    yield repr(exc.args)
    yield from map(str, getattr(exc, "__notes__", ()))
    yield "".join(traceback.format_exception(exc))
    if type(exc).__module__.startswith("resilience"):
        yield repr(vars(exc))  # our own fields: status, detail, path, errors, partial...
    inner = [exc.__cause__, exc.__context__, *(a for a in exc.args if isinstance(a, BaseException))]
    for other in inner:
        if other is not None:
            yield from exception_texts(other, seen)


def event_texts(event: rs.Event) -> Iterator[str]:
    yield repr(event)
    yield event.message()
    yield repr(event.fields())


class Leaks:
    """What to look for, and where it was found."""

    def __init__(self, key: str) -> None:
        self.needles = {
            "the virtual key": key,
            "the key without its prefix": key.removeprefix("sk-"),
            "the Authorization header": f"Bearer {key}",
            "a request body marker": BODY_MARKER,
            "an api_key field's value": FIELD_SECRET,
        }
        self.found: list[str] = []

    def scan(self, where: str, texts: Iterator[str] | list[str]) -> None:
        for text in texts:
            for what, needle in self.needles.items():
                if needle in text:
                    self.found.append(f"{what} in {where}: ...{_around(text, needle)}...")
            match = ANY_KEY.search(text)
            if match:
                self.found.append(f"a key in {where}: ...{_around(text, match.group())}...")


def _around(text: str, needle: str) -> str:
    at = text.index(needle)
    return text[max(0, at - 60) : at + len(needle) + 20]


def body(**extra: Any) -> dict[str, Any]:
    """A chat body carrying the markers in fields the server does not quote back."""
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": f"internal instructions {BODY_MARKER}"},
            {"role": "user", "content": "Say hello"},
        ],
        "api_key": FIELD_SECRET,
        "metadata": {"note": BODY_MARKER},
        **extra,
    }


def create_body() -> dict[str, Any]:
    return {
        "team_id": "acme-corp",
        "job_type": "secrets",
        "metadata": {"note": BODY_MARKER, "api_key": FIELD_SECRET},
    }


def drive(
    api: Client, emu: Emulator, breaker: rs.CircuitBreaker, errors: list[BaseException]
) -> None:
    """Every workflow step and every fault, through *api*; the expected errors are collected.

    Only what a caller of the profile may get is collected: its typed errors,
    the client-side ValueError of a bad job id and the job guard's own
    RuntimeError. Anything else (an AssertionError, a crash) fails the test.
    """

    def attempt(step: Callable[[], object]) -> None:
        try:
            step()
        except (saas.APIError, ValueError, RuntimeError) as exc:
            errors.append(exc)
        breaker.reset()  # each fault on its own; the breaker opens at the end

    def create() -> str:
        return str(api.post("/api/jobs/create", json=create_body()).json()["job_id"])

    job_id = create()
    # The happy path, streams included, and the job guard.
    api.post(f"/api/jobs/{job_id}/llm-call", json=body())
    api.events(f"/api/jobs/{job_id}/llm-call-stream", body())
    api.guard(job_id)
    # Faults in front of the app and behind it, on an idempotent endpoint; each
    # is scripted as many times as the profile sends the request (3 if retried).
    for fault, sent in (
        ("rate_limit", 3),
        ("bad_request", 1),
        ("insufficient_credits", 1),
        ("plain_500", 3),
        ("bad_gateway", 3),
        ("unavailable", 3),
        ("gateway_timeout", 3),
        ("drop", 3),
        ("reset", 3),
    ):
        emu.script("create", *[fault] * sent)
        attempt(create)
    # Faults of a paid call (ambiguous failures are not retried there).
    job_id = create()
    for fault, sent in (
        ("transient_500", 3),
        ("permanent_500", 1),
        ("drop", 1),
        ("bad_gateway", 1),
        ("rate_limit", 3),
    ):
        emu.script("llm-call", *[fault] * sent)
        attempt(lambda: api.post(f"/api/jobs/{job_id}/llm-call", json=body()))
    emu.script("llm-call", "slow")
    attempt(lambda: api.post(f"/api/jobs/{job_id}/llm-call", json=body(), timeout=0.3))
    # A 422 quotes the whole request body back ("input"): the profile drops it.
    attempt(lambda: api.post(f"/api/jobs/{job_id}/llm-call", json={"api_key": FIELD_SECRET}))
    attempt(lambda: api.post(f"/api/jobs/{job_id}/complete", json={"status": BODY_MARKER}))
    # Streams that fail after their 200, and a job guard completing a failed job.
    for fault in ("stream_error", "stream_drop", "stream_error"):
        emu.script("llm-call-stream", fault)
        attempt(lambda: api.events(f"/api/jobs/{job_id}/llm-call-stream", body()))
    emu.script("complete", "unavailable", "unavailable", "unavailable")
    attempt(lambda: api.guard(create(), fail_with=RuntimeError("the work failed")))
    # Another team's job, and a non-UUID job id refused on the client.
    attempt(lambda: api.post(f"/api/jobs/{uuid.uuid4()}/llm-call", json=body()))
    attempt(lambda: api.post("/api/jobs/not-a-uuid/llm-call", json=body()))


@pytest.mark.parametrize("kind", KINDS)
def test_no_secret_leaves_the_profile(kind: str, records: Records) -> None:
    """Every fault, every client: no key, token or body in logs, events, errors or reprs."""
    clock = FakeClock()
    errors: list[BaseException] = []
    texts: dict[str, list[str]] = {}
    with (
        Emulator(slow=1.0, failure_latency=(0, 0), stream_bug=False) as emu,
        capture_events() as events,
    ):
        leaks = Leaks(emu.virtual_key)
        breaker = saas.breaker("secrets", clock=clock)
        api = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=breaker)
        wrong = Client(kind, emu.url, WRONG_KEY, clock=clock, breaker=None)
        try:
            drive(api, emu, breaker, errors)
            try:
                wrong.create_job()
            except Exception as exc:  # 401
                errors.append(exc)
            # Five server errors open the breaker; the next call is rejected.
            emu.script("*", *["unavailable"] * 15)
            for _ in range(3):
                try:
                    api.create_job()
                except Exception as exc:
                    errors.append(exc)
            assert breaker.state is rs.CircuitState.OPEN
            pipeline = saas.pipeline("POST", f"{emu.url}/api/jobs/create", breaker=breaker)
            texts["reprs"] = [
                repr(api.api),
                repr(getattr(api.api, "adapters", None)),
                repr(getattr(api.api, "_transport", None)),
                repr(breaker),
                repr(pipeline),
                pipeline.explain(),
                repr(saas.Options()),
                saas.explain(),
                repr(saas.JobGuard(api.api, str(uuid.uuid4()))),
            ]
        finally:
            api.close()
            wrong.close()
    assert len(errors) >= 25
    kinds = {type(exc).__name__ for exc in errors}
    assert {"RateLimitError", "ServerError", "APIConnectionError", "ValidationError"} <= kinds
    assert {"AuthenticationError", "StreamError", "CircuitOpenError"} <= kinds
    assert {type(e).__name__ for e in events} >= {
        "RetryScheduled",
        "RetriesExhausted",
        "CircuitOpened",
        "CallRejected",
    }
    third_party = {"requests": {"urllib3"}, "httpx": {"httpx", "httpcore"}, "async": {"httpcore"}}
    assert {r.name.partition(".")[0] for r in records.records} >= {"resilience", *third_party[kind]}
    canary = Leaks(leaks.needles["the virtual key"])
    canary.scan(
        "the canary", [repr(body()), f"Authorization: Bearer {canary.needles['the virtual key']}"]
    )
    assert len(canary.found) == 6  # the scanner does find what it looks for
    for record in records.records:
        leaks.scan(f"a log record of {record.name!r}", record_texts(record))
    for event in events:
        leaks.scan(f"a {type(event).__name__} event", event_texts(event))
    for error in errors:
        leaks.scan(f"a {type(error).__name__} raised", exception_texts(error))
    leaks.scan("reprs and explanations", texts["reprs"])
    assert leaks.found == []


def test_no_secret_leaves_the_demo_workflows(records: Records) -> None:
    """The demo's profile run, with its whole fault mix and an outage, leaks no key."""
    with capture_events() as events:
        result = run_one(
            "profile", workflows=40, workers=4, seed=7, scale=0.005, outage=30.0, out=_Null()
        )
    assert result.succeeded + result.typed == 40
    assert events
    assert {r.name.partition(".")[0] for r in records.records} >= {"resilience", "urllib3"}
    leaks = Leaks("sk-" + "0" * 32)  # the emulator's keys are unknown here: ANY_KEY finds them
    for record in records.records:
        leaks.scan(f"a log record of {record.name!r}", record_texts(record))
    for event in events:
        leaks.scan(f"a {type(event).__name__} event", event_texts(event))
    assert leaks.found == []


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def test_event_log_fields_redact_what_user_code_quotes() -> None:
    """An exception quoting a header or a key is redacted in log fields and messages."""
    key = "sk-" + uuid.uuid4().hex
    error = ValueError(f"request failed: headers={{'Authorization': 'Bearer {key}'}} api_key={key}")
    event = rs.RetryScheduled(attempt=1, delay=1.0, elapsed=0.0, error=error)
    for text in (event.message(), repr(event.fields())):
        assert key not in text
        assert key.removeprefix("sk-") not in text
    assert "Authorization" in event.message()  # the rest of the text stays readable


def test_a_key_passed_as_the_base_url_is_not_echoed() -> None:
    """session(KEY, URL), arguments swapped, fails without quoting the key."""
    key = "sk-" + uuid.uuid4().hex
    with pytest.raises(ValueError, match="base_url must be an absolute") as caught:
        saas.session(key, "https://api.example.com")
    assert key not in str(caught.value)


def test_credentials_in_a_base_url_do_not_name_the_breaker() -> None:
    """breaker_for drops user:password@ from the origin that names the shared breaker."""
    breaker = saas.breaker_for(
        "https://user:s3cr3t-pa55@api.example.com:8443/v1", clock=FakeClock()
    )
    assert breaker.name == "saas-litellm https://api.example.com:8443 other"
    assert "s3cr3t" not in repr(breaker)


# --- redaction of what an exception quotes -------------------------------------------------

CREDENTIAL = "dXNlcjpodW50ZXIy"  # base64 of "user:hunter2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Authorization and Proxy-Authorization: scheme and credentials, any case.
        (f"{{'authorization': 'basic {CREDENTIAL}'}}", "{'authorization': '***'}"),
        (f"{{'Authorization': 'Basic {CREDENTIAL}'}}", "{'Authorization': '***'}"),
        (f'{{"AUTHORIZATION": "BEARER {CREDENTIAL}"}}', '{"AUTHORIZATION": "***"}'),
        ("headers={'Authorization': 'token ghp_abcdefghijkl'}", "headers={'Authorization': '***'}"),
        (f"{{'Authorization': 'ApiKey {CREDENTIAL}'}}", "{'Authorization': '***'}"),
        ("{'Authorization': 'Bearer abc123'}", "{'Authorization': '***'}"),
        ('"Authorization": "Bearer abc 123"', '"Authorization": "***"'),
        ("[(b'authorization', b'Bearer abc123')]", "[(b'authorization', '***')]"),
        ("'Authorization': ['Bearer', 'abc123']", "'Authorization': ***"),
        (f"{{'proxy-authorization': 'basic {CREDENTIAL}'}}", "{'proxy-authorization': '***'}"),
        ("Authorization: Bearer abc123", "Authorization: ***"),
        ("authorization: bearer abc123", "authorization: ***"),
        (f"Authorization: Basic {CREDENTIAL}", "Authorization: ***"),
        (f"Authorization: basic {CREDENTIAL}", "Authorization: ***"),
        ('Authorization: Digest username="bob", response="6629fae4939"', "Authorization: ***"),
        ("Authorization: ApiKey 9f8e7d6c5b4a3928", "Authorization: ***"),
        ("Authorization: token ghp_abcdefghijkl", "Authorization: ***"),
        ("Authorization:\tBearer\tabc123", "Authorization:\t***"),
        (f"Proxy-Authorization: Basic {CREDENTIAL}", "Proxy-Authorization: ***"),
        ("authorization=Bearer%20abc123", "authorization=***"),
        ("Request(authorization='Bearer abc123')", "Request(authorization='***')"),
        # The rest of a header dump stays readable.
        ("Authorization: Bearer abc123\nstatus: 401", "Authorization: ***\nstatus: 401"),
        # sk- keys, also glued after "_" or other punctuation.
        ("token_sk-ABCDEFGH12345678", "token_sk-***"),
        ("key sk-proj-ABCDEFGH12345678.", "key sk-***."),
        ("(sk-ABCDEFGH12345678)", "(sk-***)"),
        # Other secret-like fields: a quoted value is blanked whole.
        ("{'X-Api-Key': 'abc def'}", "{'X-Api-Key': '***'}"),
        ("GET /x?api_key=abc123&limit=1", "GET /x?api_key=***&limit=1"),
        # Words that only look like it are left alone.
        ("authorization failed for task-abcdefgh12345678", None),
        ("the basic plan; a token bucket", None),
        ("Authorization:", None),
        ("Authorization: \n", None),
    ],
)
def test_redact_blanks_authorization_values_and_keys(text: str, expected: str | None) -> None:
    """Authorization values go whole, in any case and form; sk- keys go wherever they are."""
    from resilience._events import redact

    assert redact(text) == (text if expected is None else expected)
    assert redact(redact(text)) == redact(text)


def test_log_fields_redact_a_basic_authorization_header() -> None:
    """The tester's case: a quoted lower-case header dict leaves nothing of the credential."""
    headers = {"authorization": f"basic {CREDENTIAL}"}
    error = ConnectionError(f"proxy refused, sent headers {headers}")
    event = rs.RetriesExhausted(attempts=2, elapsed=0.0, reason="attempts", error=error)
    for text in (event.message(), repr(event.fields())):
        assert CREDENTIAL not in text
        assert "'authorization': '***'" in text
