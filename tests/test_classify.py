from __future__ import annotations

import asyncio
import email.utils
import http
import http.server
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import pytest
import requests
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st

import resilience as rs
from resilience._classify import (
    SUCCESS,
    ErrorClassifier,
    Rule,
    Verdict,
    parse_retry_after,
    retry_after_of,
    status_of,
    to_classifier,
    transient,
)
from resilience._exceptions import (
    CircuitOpenError,
    RejectedError,
    RetryExhaustedError,
    TimeoutExceededError,
)

from .threads import join_all

if TYPE_CHECKING:
    from collections.abc import Callable

# --- a real HTTP server ---------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/status/<code>?retry-after=..&retry-after-ms=..&body=..``, ``/drop``, ``/truncate``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/drop":  # close without answering
            self.close_connection = True
            return
        if url.path == "/truncate":  # announce 16 bytes of a chunk, send 9, hang up
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"10\r\nonly part")
            self.wfile.flush()
            self.close_connection = True
            return
        code = int(url.path.rsplit("/", 1)[-1])
        body = query.get("body", "").encode()
        self.send_response(code)
        if "retry-after" in query:
            self.send_header("Retry-After", query["retry-after"])
        if "retry-after-ms" in query:
            self.send_header("retry-after-ms", query["retry-after-ms"])
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1, an ephemeral port, in a thread; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        join_all([thread])


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that completes TCP handshakes (backlog) but never answers: reads time out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as s:
        s.trust_env = False
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An httpx client that ignores proxy settings from the environment."""
    with httpx.Client(trust_env=False) as c:
        yield c


def _urlopen_error(url: str) -> urllib.error.HTTPError:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(url, timeout=5).close()
    except urllib.error.HTTPError as exc:
        exc.close()  # the body is not needed; the status and headers stay readable
        return exc
    raise AssertionError(f"{url} did not fail")


def _requests_error(session: requests.Session, url: str) -> requests.HTTPError:
    with session.get(url, timeout=5) as response:
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            return exc
    raise AssertionError(f"{url} did not fail")


def _httpx_error(client: httpx.Client, url: str) -> httpx.HTTPStatusError:
    try:
        client.get(url, timeout=5).raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError(f"{url} did not fail")


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example.test/x")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"status {status}", request=request, response=response)


# --- look-alikes of libraries that are not installed ------------------------------
# Defined with the real class names, bases and modules of aiohttp, openai and
# litellm: transient recognises them by package and name in the MRO.


class ClientError(Exception):
    pass


class ClientConnectionError(ClientError):
    pass


class ClientOSError(ClientConnectionError, OSError):
    pass


class ClientConnectorError(ClientOSError):
    pass


class ServerConnectionError(ClientConnectionError):
    pass


class ServerDisconnectedError(ServerConnectionError):
    pass


class ServerTimeoutError(ServerConnectionError, asyncio.TimeoutError):
    pass


class ClientResponseError(ClientError):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}, message='...'")
        self.status = status
        self.headers = headers


for _aiohttp_cls in (
    ClientError,
    ClientConnectionError,
    ClientOSError,
    ClientConnectorError,
    ServerConnectionError,
    ServerDisconnectedError,
    ServerTimeoutError,
    ClientResponseError,
):
    _aiohttp_cls.__module__ = "aiohttp.client_exceptions"


class APIError(Exception):
    pass


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class APIStatusError(APIError):
    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class BadRequestError(APIStatusError):
    pass


for _openai_cls in (
    APIError,
    APIConnectionError,
    APITimeoutError,
    APIStatusError,
    RateLimitError,
    InternalServerError,
    BadRequestError,
):
    _openai_cls.__module__ = "openai"


class Timeout(APITimeoutError):  # litellm's, a subclass of openai's
    __module__ = "litellm.exceptions"


class LiteLLMConnectionError(APIConnectionError):
    __module__ = "litellm.exceptions"


def _openai_error(cls: type[APIStatusError], status: int, **headers: str) -> APIStatusError:
    response = httpx.Response(status, headers=headers)
    return cls(f"Error code: {status}", response=response)


# --- Verdict -------------------------------------------------------------------------


def test_verdict_defaults() -> None:
    """A bare Verdict says nothing: no retry, no trip, no kind, no status, no Retry-After."""
    assert Verdict() == Verdict(retry=False, trip=False, kind=None, status=None, retry_after=None)


def test_success_is_a_bare_verdict() -> None:
    """SUCCESS is the shared bare verdict."""
    assert Verdict() == SUCCESS


def test_verdict_is_frozen() -> None:
    """A verdict cannot be changed."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        SUCCESS.retry = True  # type: ignore[misc]


def test_public_classes_say_resilience() -> None:
    """Verdict, Rule and ErrorClassifier present themselves as resilience.X."""
    assert {cls.__module__ for cls in (Verdict, Rule, ErrorClassifier)} == {"resilience"}


# --- Rule construction ---------------------------------------------------------------


def test_rule_needs_a_condition() -> None:
    """A rule without any condition is refused, naming the four conditions."""
    with pytest.raises(ValueError, match="exception=, status=, message= or when="):
        Rule(retry=True)


@pytest.mark.parametrize(
    "cls", [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError]
)
def test_rule_refuses_base_exceptions(cls: type[BaseException]) -> None:
    """A BaseException that is not an Exception is refused: it is never classified."""
    with pytest.raises(ValueError, match=rf"{cls.__name__}.*never classified"):
        Rule(exception=cls)


def test_rule_refuses_base_exception_inside_a_tuple() -> None:
    """A tuple of types is refused when one of them is BaseException-only."""
    with pytest.raises(ValueError, match="KeyboardInterrupt"):
        Rule(exception=(ValueError, KeyboardInterrupt))


@pytest.mark.parametrize("value", [int, "ValueError", ValueError("x")])
def test_rule_refuses_non_exception_types(value: Any) -> None:
    """exception= must hold exception types."""
    with pytest.raises(TypeError, match="exception must be an exception type"):
        Rule(exception=value)


def test_rule_refuses_empty_exception_tuple() -> None:
    """An empty tuple of exception types would match nothing and is refused."""
    with pytest.raises(ValueError, match="at least one exception type"):
        Rule(exception=())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (99, ValueError),
        (600, ValueError),
        ([500, 99], ValueError),
        (range(1000), ValueError),
        (range(500, 500), ValueError),
        ([], ValueError),
        (True, TypeError),
        ("503", TypeError),
        (503.0, TypeError),
        ([503, "504"], TypeError),
    ],
)
def test_rule_refuses_bad_statuses(value: Any, error: type[Exception]) -> None:
    """status= must be HTTP statuses (100..599) as ints, an iterable of them, or a range."""
    with pytest.raises(error, match="status must"):
        Rule(status=value)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (503, 503),
        (http.HTTPStatus.SERVICE_UNAVAILABLE, 503),
        ([504, 502, 502], (502, 504)),
        (range(500, 600), range(500, 600)),
    ],
)
def test_rule_normalizes_statuses(value: Any, stored: object) -> None:
    """An int stays an int, a range stays a range, other iterables become a sorted tuple."""
    assert Rule(status=value).status == stored


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ValueError), (re.compile(b"x"), TypeError), (3, TypeError)],
)
def test_rule_refuses_bad_messages(value: Any, error: type[Exception]) -> None:
    """message= must be a non-empty str or a compiled str pattern."""
    with pytest.raises(error, match="message must"):
        Rule(message=value)


def test_rule_refuses_non_callable_when() -> None:
    """when= must be callable."""
    with pytest.raises(TypeError, match="when must be a callable"):
        Rule(when=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["retry", "trip"])
def test_rule_wants_real_bools(name: str) -> None:
    """retry= and trip= must be bools, not merely truthy."""
    options: dict[str, Any] = {name: 1}
    with pytest.raises(TypeError, match=f"{name} must be a bool"):
        Rule(status=503, **options)


def test_rule_refuses_non_str_kind() -> None:
    """kind= must be a str or None."""
    with pytest.raises(TypeError, match="kind must be a str"):
        Rule(status=503, kind=5)  # type: ignore[arg-type]


def test_rule_is_keyword_only() -> None:
    """Rule takes keywords only, so conditions cannot be mixed up."""
    with pytest.raises(TypeError):
        Rule(ValueError)  # type: ignore[call-arg]


def test_rule_repr_shows_what_was_given() -> None:
    """A rule's repr lists only the non-default fields."""
    rule = Rule(exception=(ValueError, httpx.ReadError), status=503, retry=False, kind="x")
    assert repr(rule) == (
        "Rule(exception=(ValueError, httpx.ReadError), status=503, retry=False, kind='x')"
    )


def test_rule_repr_names_the_predicate() -> None:
    """A predicate shows as its qualified name."""

    def is_odd(outcome: object) -> bool:
        return False

    assert repr(Rule(when=is_odd)) == (
        "Rule(when=test_rule_repr_names_the_predicate.<locals>.is_odd)"
    )


def test_rules_compare_by_value() -> None:
    """Equal rules are equal and hash alike."""
    assert Rule(status=[503, 502]) == Rule(status=(502, 503))
    assert hash(Rule(status=[503, 502])) == hash(Rule(status=(502, 503)))


# --- each kind of condition ------------------------------------------------------------


def test_exception_condition_matches_instances_and_subclasses() -> None:
    """exception= matches instances of the type and of its subclasses."""
    c = ErrorClassifier([Rule(exception=LookupError, kind="lookup")])
    assert c.classify(KeyError("k")).kind == "lookup"
    assert c.classify(LookupError()).kind == "lookup"
    assert c.classify(ValueError()).kind is None


def test_exception_condition_takes_a_tuple() -> None:
    """exception= with a tuple matches any of its types."""
    c = ErrorClassifier([Rule(exception=(KeyError, ValueError), kind="k")])
    assert c.classify(KeyError()).kind == c.classify(ValueError()).kind == "k"
    assert c.classify(TypeError()).kind is None


def test_exception_condition_never_matches_results() -> None:
    """exception= matches raised exceptions only, never a returned result, not even a type."""
    c = ErrorClassifier([Rule(exception=Exception)])
    assert c.classify(ValueError) is SUCCESS
    assert c.classify("ValueError") is SUCCESS


def test_status_condition_matches_exceptions_carrying_it() -> None:
    """status= matches an exception whose status is among those given."""
    c = ErrorClassifier([Rule(status=503, kind="busy")])
    assert c.classify(_status_error(503)).kind == "busy"
    assert c.classify(_status_error(502)).kind is None


def test_status_condition_skips_exceptions_without_status() -> None:
    """status= never matches an exception that carries no status."""
    c = ErrorClassifier([Rule(status=range(100, 600))])
    assert c.classify(RuntimeError("503")) is SUCCESS


def test_status_condition_takes_an_iterable() -> None:
    """status= with several statuses matches any of them."""
    c = ErrorClassifier([Rule(status={502, 504})])
    assert [c.classify(_status_error(s)).retry for s in (502, 503, 504)] == [True, False, True]


def test_status_condition_takes_a_range() -> None:
    """status= with a range matches its members only."""
    c = ErrorClassifier([Rule(status=range(500, 600))])
    assert [c.classify(httpx.Response(s)).retry for s in (499, 500, 599)] == [False, True, True]


def test_status_condition_matches_returned_responses() -> None:
    """status= matches a response that was returned, not raised."""
    c = ErrorClassifier([Rule(status=503, kind="busy")])
    assert c.classify(httpx.Response(503)) == Verdict(
        retry=True, trip=True, kind="busy", status=503
    )


def test_message_substring_matches_exception_text() -> None:
    """A str message= matches when it occurs in str(exc)."""
    c = ErrorClassifier([Rule(message="overloaded", kind="busy")])
    assert c.classify(RuntimeError("model is overloaded, try later")).kind == "busy"
    assert c.classify(RuntimeError("Overloaded")).kind is None


def test_message_regex_searches_exception_text() -> None:
    """A compiled message= is searched (not matched from the start) in str(exc)."""
    c = ErrorClassifier([Rule(message=re.compile(r"error code: 5\d\d", re.I))])
    assert c.classify(RuntimeError("provider said Error code: 502")).retry
    assert not c.classify(RuntimeError("provider said Error code: 404")).retry


def test_message_matches_response_text() -> None:
    """message= matches the text body of a returned response."""
    c = ErrorClassifier([Rule(message="try again", kind="busy")])
    assert c.classify(httpx.Response(200, text="busy, try again later")).kind == "busy"
    assert c.classify(httpx.Response(200, text="done")).kind is None


def test_message_skips_unread_streaming_response() -> None:
    """An unread streaming httpx response has no text: no match, and no error."""
    response = httpx.Response(503, content=iter([b"busy"]))
    verdict = ErrorClassifier([Rule(message="busy")]).classify(response)
    assert verdict == Verdict(status=503)
    response.close()


def test_message_skips_results_without_text() -> None:
    """A result without a str .text never matches message=, even a str result."""
    c = ErrorClassifier([Rule(message="busy")])
    assert c.classify("busy") is SUCCESS
    assert c.classify(type("R", (), {"text": b"busy"})()) is SUCCESS


def test_message_survives_a_broken_str() -> None:
    """An exception whose __str__ raises has no text: the rule does not match."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert ErrorClassifier([Rule(message="x")]).classify(Broken()) is SUCCESS


def test_when_sees_exceptions() -> None:
    """when= is called with the exception and matches when truthy."""
    c = ErrorClassifier([Rule(when=lambda e: getattr(e, "errno", None) == 5, kind="io")])
    assert c.classify(OSError(5, "io")).kind == "io"
    assert c.classify(OSError(6, "io")).kind is None


def test_when_sees_results() -> None:
    """when= is called with a returned result too."""
    c = ErrorClassifier([Rule(when=lambda r: r == {"state": "pending"}, kind="pending")])
    assert c.classify({"state": "pending"}).kind == "pending"
    assert c.classify({"state": "done"}) is SUCCESS


def test_when_errors_propagate() -> None:
    """Whatever a when= predicate raises comes out of classify unchanged."""
    boom = ZeroDivisionError("predicate bug")

    def predicate(outcome: object) -> bool:
        raise boom

    with pytest.raises(ZeroDivisionError) as info:
        ErrorClassifier([Rule(when=predicate)]).classify(ValueError())
    assert info.value is boom


def test_conditions_are_anded() -> None:
    """Every condition given must hold."""
    c = ErrorClassifier([Rule(exception=httpx.HTTPStatusError, status=503, message="503")])
    assert c.classify(_status_error(503)).retry
    assert not c.classify(_status_error(502)).retry
    assert not c.classify(InternalServerError("503", response=httpx.Response(503))).retry


def test_when_is_not_called_when_another_condition_fails() -> None:
    """when= runs last, only once the other conditions hold."""
    calls: list[object] = []
    c = ErrorClassifier([Rule(exception=KeyError, when=calls.append)])
    c.classify(ValueError())
    c.classify(httpx.Response(503))
    assert calls == []


def test_matched_verdict_carries_rule_and_outcome_details() -> None:
    """A match gives the rule's retry/trip/kind and the outcome's status and Retry-After."""
    c = ErrorClassifier([Rule(status=429, retry=False, trip=True, kind="rate_limit")])
    verdict = c.classify(_status_error(429, {"Retry-After": "7"}))
    assert verdict == Verdict(retry=False, trip=True, kind="rate_limit", status=429, retry_after=7)


def test_matched_verdict_without_details_is_shared() -> None:
    """A match on an outcome without status or Retry-After allocates no new verdict."""
    c = ErrorClassifier([Rule(exception=KeyError, kind="k")])
    assert c.classify(KeyError()) is c.classify(KeyError())


# --- classifiers ------------------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    """Rules are tried in order; the first that matches decides."""
    c = ErrorClassifier(
        [
            Rule(status=500, message="No provider credentials", retry=False, trip=False),
            Rule(status=range(500, 600), kind="server"),
        ]
    )
    permanent = httpx.Response(500, text="No provider credentials configured")
    assert c.classify(permanent) == Verdict(status=500)
    assert c.classify(httpx.Response(500, text="oops")).kind == "server"


def test_unmatched_exception_is_neither_retried_nor_counted() -> None:
    """An exception that no rule matches gets retry=False, trip=False, kind=None."""
    assert ErrorClassifier([Rule(exception=KeyError)]).classify(ValueError()) is SUCCESS


def test_unmatched_exception_still_reports_status_and_retry_after() -> None:
    """status and retry_after are read even when no rule matched."""
    verdict = transient.classify(_status_error(404, {"Retry-After": "3"}))
    assert verdict == Verdict(status=404, retry_after=3.0)


def test_unmatched_result_is_a_success() -> None:
    """A result that no rule matches is a success, the shared SUCCESS when it says nothing."""
    c = ErrorClassifier([Rule(status=503)])
    assert c.classify(42) is SUCCESS
    assert c.classify(None) is SUCCESS
    assert c.classify(object()) is SUCCESS


def test_unmatched_responses_share_verdicts() -> None:
    """Unmatched results with the same status share one verdict: no allocation per call."""
    first = transient.classify(httpx.Response(200))
    assert first == Verdict(status=200)
    assert transient.classify(httpx.Response(200)) is first


def test_unmatched_success_response_skips_retry_after() -> None:
    """The Retry-After of a 2xx result that no rule matched is not read (nothing acts on it)."""
    assert transient.classify(httpx.Response(200, headers={"Retry-After": "5"})).retry_after is None


def test_unmatched_error_response_reads_retry_after() -> None:
    """The Retry-After of an unmatched non-2xx result is still read."""
    verdict = transient.classify(httpx.Response(409, headers={"Retry-After": "5"}))
    assert verdict == Verdict(status=409, retry_after=5.0)


def test_matched_success_response_reads_retry_after() -> None:
    """A matched 2xx result (a 202 to poll again) reports its Retry-After."""
    c = ErrorClassifier([Rule(status=202, kind="pending")])
    verdict = c.classify(httpx.Response(202, headers={"Retry-After": "2"}))
    assert verdict.retry_after == 2.0


@pytest.mark.parametrize(
    "outcome",
    [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()],
)
def test_base_exceptions_are_never_classified(outcome: BaseException) -> None:
    """Cancellation and interpreter exits get SUCCESS, and no predicate sees them."""
    calls: list[object] = []
    c = ErrorClassifier([Rule(when=calls.append)])
    assert c.classify(outcome) is SUCCESS
    assert calls == []


def test_an_empty_classifier_matches_nothing() -> None:
    """A classifier without rules classifies every outcome as not retryable."""
    assert ErrorClassifier([]).classify(ValueError()) is SUCCESS


def test_or_tries_left_rules_first() -> None:
    """a | b tries a's rules, then b's."""
    a = ErrorClassifier([Rule(status=503, retry=False, kind="a")])
    b = ErrorClassifier([Rule(status=503, kind="b"), Rule(status=502, kind="b")])
    combined = a | b
    assert combined.rules == a.rules + b.rules
    assert combined.classify(httpx.Response(503)).kind == "a"
    assert combined.classify(httpx.Response(502)).kind == "b"


def test_or_with_rules() -> None:
    """A Rule on either side of | is a one-rule classifier."""
    first, second = Rule(status=409), Rule(status=423)
    assert (first | second).rules == (first, second)
    assert (first | transient).rules == (first, *transient.rules)
    assert (transient | first).rules == (*transient.rules, first)


@pytest.mark.parametrize("other", [3, ValueError, None])
def test_or_refuses_other_operands(other: Any) -> None:
    """| combines rules and classifiers only."""
    with pytest.raises(TypeError):
        transient | other
    with pytest.raises(TypeError):
        Rule(status=503) | other


def test_handles_results_false_for_exception_rules_only() -> None:
    """A classifier whose rules all name exception types cannot match results."""
    c = ErrorClassifier([Rule(exception=KeyError), Rule(exception=OSError, status=503)])
    assert c.handles_results is False


@pytest.mark.parametrize(
    "rule", [Rule(status=503), Rule(message="x"), Rule(when=bool)], ids=["status", "msg", "when"]
)
def test_handles_results_true_with_a_rule_without_exception(rule: Rule) -> None:
    """A rule without exception= can match results."""
    assert ErrorClassifier([Rule(exception=KeyError), rule]).handles_results is True


def test_handles_results_of_combined_classifiers() -> None:
    """| recomputes handles_results from the combined rules."""
    exceptions_only = ErrorClassifier([Rule(exception=KeyError)])
    assert ErrorClassifier([]).handles_results is False
    assert (exceptions_only | Rule(status=503)).handles_results is True


def test_classifier_refuses_a_bare_rule() -> None:
    """ErrorClassifier wants an iterable of rules, and says so for a single one."""
    with pytest.raises(TypeError, match="wrap a single rule in a list"):
        ErrorClassifier(Rule(status=503))  # type: ignore[arg-type]


@pytest.mark.parametrize("rules", [[Rule(status=503), KeyError], "rules", 5])
def test_classifier_refuses_non_rules(rules: Any) -> None:
    """ErrorClassifier refuses anything but Rule objects."""
    with pytest.raises(TypeError, match="rules must"):
        ErrorClassifier(rules)


def test_classifier_keeps_rules_as_a_tuple() -> None:
    """rules is a tuple, whatever iterable was given."""
    rule = Rule(status=503)
    assert ErrorClassifier(iter([rule])).rules == (rule,)


def test_classifiers_compare_and_hash_by_rules() -> None:
    """Classifiers with equal rules are equal and hash alike, so policies stay hashable."""
    assert ErrorClassifier([Rule(status=503)]) == ErrorClassifier((Rule(status=503),))
    assert hash(ErrorClassifier([Rule(status=503)])) == hash(ErrorClassifier([Rule(status=503)]))


def test_classifier_repr_lists_rules() -> None:
    """A classifier's repr lists its rules."""
    c = ErrorClassifier([Rule(status=503), Rule(exception=KeyError, trip=False)])
    assert repr(c) == "ErrorClassifier([Rule(status=503), Rule(exception=KeyError, trip=False)])"


# --- to_classifier ------------------------------------------------------------------------


def test_to_classifier_keeps_a_classifier() -> None:
    """A classifier is returned as is."""
    assert to_classifier(transient) is transient


def test_to_classifier_from_an_exception_type() -> None:
    """An exception type becomes one exception rule."""
    assert to_classifier(KeyError) == ErrorClassifier([Rule(exception=KeyError)])


def test_to_classifier_from_a_tuple_of_types() -> None:
    """A tuple of exception types becomes one exception rule."""
    c = to_classifier((KeyError, OSError))
    assert c == ErrorClassifier([Rule(exception=(KeyError, OSError))])
    assert c.classify(OSError()).retry


def test_to_classifier_from_a_rule() -> None:
    """A rule becomes a classifier of that rule."""
    rule = Rule(status=503)
    assert to_classifier(rule).rules == (rule,)


def test_to_classifier_from_a_predicate_sees_exceptions_only() -> None:
    """A plain predicate matches exceptions and is never called with results."""
    seen: list[object] = []

    def predicate(outcome: object) -> bool:
        seen.append(outcome)
        return True

    c = to_classifier(predicate)
    assert c.rules == (Rule(exception=Exception, when=predicate),)
    assert c.handles_results is False
    error = ValueError()
    assert c.classify(error).retry
    assert c.classify(httpx.Response(503)) == Verdict(status=503)
    assert seen == [error]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (3, "got int: 3"),
        ("ValueError", "got str: 'ValueError'"),
        ("x", "got str: 'x'"),
        ([ValueError], r"got list: \[<class 'ValueError'>\]"),
        (int, "got the type int"),
        ((ValueError, 3), "got a tuple holding int"),
        (None, "got None"),
    ],
)
def test_to_classifier_refuses_other_values(value: object, named: str) -> None:
    """Anything else is a TypeError naming on, what it accepts, and what it got."""
    with pytest.raises(TypeError, match=rf"on must be an ErrorClassifier, .*; {named}"):
        to_classifier(value)


def test_to_classifier_refuses_base_exception_types() -> None:
    """on=KeyboardInterrupt is refused, naming on and the value: it would never be classified."""
    with pytest.raises(ValueError, match="KeyboardInterrupt"):
        to_classifier(KeyboardInterrupt)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ((), ValueError, r"^on must name at least one exception type, got \(\)$"),
        (KeyboardInterrupt, ValueError, r"^on must be Exception subclasses, got KeyboardInterrupt"),
        (
            (ValueError, SystemExit),
            ValueError,
            r"^on must be Exception subclasses, got SystemExit",
        ),
        (
            asyncio.CancelledError,
            ValueError,
            r"^on must be Exception subclasses, got asyncio\.exceptions\.CancelledError",
        ),
    ],
    ids=["empty-tuple", "keyboard-interrupt", "in-a-tuple", "cancelled"],
)
def test_to_classifier_errors_name_on_and_the_value(
    value: object, error: type[Exception], message: str
) -> None:
    """Errors about on= name on (not Rule's exception=) and the value given."""
    with pytest.raises(error, match=message):
        to_classifier(value)


@pytest.mark.parametrize("policy", ["Retry", "CircuitBreaker"])
def test_policies_name_on_in_classifier_errors(policy: str) -> None:
    """Retry(on=()) and CircuitBreaker(on=KeyboardInterrupt) say on=, with the value."""
    cls = getattr(rs, policy)
    with pytest.raises(ValueError, match=r"^on must name at least one exception type, got \(\)"):
        cls(on=())
    with pytest.raises(ValueError, match=r"^on must be Exception subclasses, got KeyboardInt"):
        cls(on=KeyboardInterrupt)
    with pytest.raises(TypeError, match=r"^on must be .*; got str: 'x'$"):
        cls(on="x")


# --- status_of ------------------------------------------------------------------------------


class _Obj:
    def __init__(self, **attributes: object) -> None:
        self.__dict__.update(attributes)


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (_Obj(status_code=503), 503),
        (_Obj(response=_Obj(status_code=502)), 502),
        (_Obj(status=504), 504),
        (_Obj(status_code=None, status=429), 429),
        (_Obj(status_code=http.HTTPStatus.TOO_MANY_REQUESTS), 429),
        (_Obj(status_code=True), None),
        (_Obj(status_code="503"), None),
        (_Obj(status_code=99), None),
        (_Obj(status_code=600), None),
        (_Obj(status_code=503.0), None),
        (_Obj(code=503), None),
        (_Obj(response=None), None),
        (42, None),
    ],
)
def test_status_of_duck_types(obj: object, status: int | None) -> None:
    """status_of reads status_code, response.status_code or status: real ints in 100..599."""
    assert status_of(obj) == status
    assert type(status_of(obj)) is type(status)


def test_status_of_survives_raising_properties() -> None:
    """A property that raises means no status."""

    class Odd:
        @property
        def status_code(self) -> int:
            raise RuntimeError("not yet")

    assert status_of(Odd()) is None


def test_status_of_real_requests_objects(session: requests.Session, server: str) -> None:
    """status_of reads a real requests Response and the HTTPError raise_for_status raises."""
    with session.get(f"{server}/status/503", timeout=5) as response:
        assert status_of(response) == 503
    assert status_of(_requests_error(session, f"{server}/status/502")) == 502


def test_status_of_real_httpx_objects(client: httpx.Client, server: str) -> None:
    """status_of reads a real httpx Response and the HTTPStatusError raise_for_status raises."""
    assert status_of(client.get(f"{server}/status/429", timeout=5)) == 429
    assert status_of(_httpx_error(client, f"{server}/status/504")) == 504


def test_status_of_real_urllib_objects(server: str) -> None:
    """status_of reads urllib's HTTPError from a real urlopen, and its successful response."""
    assert status_of(_urlopen_error(f"{server}/status/503")) == 503
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server}/status/200", timeout=5) as response:
        assert status_of(response) == 200


def test_status_of_aiohttp_and_openai_look_alikes() -> None:
    """status_of reads aiohttp's .status and openai's .status_code."""
    assert status_of(ClientResponseError(503)) == 503
    assert status_of(_openai_error(RateLimitError, 429)) == 429


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5", 5.0), ("1.5", 1.5), (" 2 ", 2.0), ("0", 0.0), (".25", 0.25), ("-3", 0.0)],
)
def test_parse_retry_after_seconds(value: str, seconds: float) -> None:
    """Delay seconds, fractional ones too, parse to seconds; negatives become 0.0."""
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_future_date() -> None:
    """An HTTP-date in the future is the seconds until then."""
    value = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 110 <= seconds <= 120


def test_parse_retry_after_past_date() -> None:
    """An HTTP-date in the past means now: 0.0."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_parse_retry_after_date_without_zone_is_utc() -> None:
    """An HTTP-date with -0000 (no zone said) is read as UTC."""
    value = email.utils.formatdate(time.time() + 120).replace("+0000", "-0000")
    seconds = parse_retry_after(value)
    assert seconds is not None
    assert 110 <= seconds <= 120


@pytest.mark.parametrize(
    "value", ["", "  ", "soon", "nan", "inf", "1e3", "5 seconds", "0x10", "1_000", "--1"]
)
def test_parse_retry_after_garbage(value: str) -> None:
    """Anything but delay seconds or an HTTP-date is None."""
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "3"}, {"Retry-After": "3"}, {"RETRY-AFTER": "3"}, {"Retry-After": 3}],
)
def test_retry_after_from_plain_dict_headers(headers: dict[str, object]) -> None:
    """Plain dict headers are read under the usual casings, numbers accepted."""
    assert retry_after_of(_Obj(headers=headers)) == 3.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-after": "3"}, 3.0),
        ({"rEtRy-AfTeR": "3"}, 3.0),
        ({"retry-After-ms": "1500"}, 1.5),
        ({"Retry-after-Ms": "1500", "retry-AFTER": "9"}, 1.5),
        ({b"Retry-after": b"4"}, 4.0),
    ],
)
def test_retry_after_from_dict_headers_in_any_casing(
    headers: dict[Any, object], seconds: float
) -> None:
    """Plain dict headers are looked up case-insensitively, whatever the casing."""
    assert retry_after_of(_Obj(headers=headers)) == seconds


class _CaseSensitiveHeaders(Mapping[str, str]):
    """A read-only, case-sensitive Mapping that is not a dict."""

    def __init__(self, **items: str) -> None:
        self._items = {key.replace("_", "-"): value for key, value in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_retry_after_from_any_mapping_in_any_casing() -> None:
    """Any Mapping of headers is scanned case-insensitively when the exact names miss."""
    assert retry_after_of(_Obj(headers=_CaseSensitiveHeaders(Retry_after="5"))) == 5.0
    assert retry_after_of(_Obj(headers=_CaseSensitiveHeaders(RETRY_after_MS="250"))) == 0.25
    assert retry_after_of(_Obj(headers=_CaseSensitiveHeaders(Other="1"))) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2, 7", 7.0),
        ("7,2", 7.0),
        ("1.5, 0.5, 3", 3.0),
        (" 4 ,  4 ", 4.0),
    ],
)
def test_parse_retry_after_joined_values_use_the_largest(value: str, seconds: float) -> None:
    """Several Retry-After headers joined with commas: the largest wait (it is a floor)."""
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("value", ["2, soon", "2, -1", "2,", ",", "2, , 3", "2, nan", "2, inf"])
def test_parse_retry_after_joined_values_must_all_be_seconds(value: str) -> None:
    """A joined value counts only when every part is a non-negative number of seconds."""
    assert parse_retry_after(value) is None


def test_retry_after_joined_headers_from_real_clients() -> None:
    """Two Retry-After headers, as httpx and requests join them, give the largest."""
    response = httpx.Response(429, headers=[("Retry-After", "2"), ("Retry-After", "7")])
    assert response.headers["retry-after"] == "2, 7"
    assert retry_after_of(response) == 7.0
    assert retry_after_of(_Obj(headers={"Retry-After": "2, 7"})) == 7.0
    assert retry_after_of(_Obj(headers={"retry-after-ms": "1500, 500"})) == 1.5


def test_retry_after_ms_takes_precedence() -> None:
    """retry-after-ms (milliseconds) wins over Retry-After."""
    response = httpx.Response(429, headers={"Retry-After": "3", "retry-after-ms": "1500"})
    assert retry_after_of(response) == 1.5


@pytest.mark.parametrize("name", ["retry-after-ms", "Retry-After-Ms", "Retry-After-MS"])
def test_retry_after_ms_in_plain_dicts(name: str) -> None:
    """retry-after-ms is found in plain dicts under the usual casings."""
    assert retry_after_of(_Obj(headers={name: "250", "Retry-After": "9"})) == 0.25


def test_garbage_retry_after_ms_falls_back_to_retry_after() -> None:
    """An unusable retry-after-ms leaves Retry-After to decide."""
    assert retry_after_of(_Obj(headers={"retry-after-ms": "soon", "Retry-After": "4"})) == 4.0


def test_garbage_retry_after_is_none() -> None:
    """An unusable Retry-After is None."""
    assert retry_after_of(httpx.Response(503, headers={"Retry-After": "later"})) is None


def test_retry_after_from_response_headers_of_an_error() -> None:
    """Retry-After is read from exc.response.headers (httpx, requests, openai errors)."""
    assert retry_after_of(_status_error(503, {"Retry-After": "6"})) == 6.0
    assert retry_after_of(_openai_error(RateLimitError, 429, **{"retry-after-ms": "20"})) == 0.02


def test_retry_after_attribute() -> None:
    """A numeric .retry_after attribute counts (CircuitOpenError carries one)."""
    assert retry_after_of(CircuitOpenError("api", 2.5)) == 2.5
    assert retry_after_of(CircuitOpenError("api", None)) is None
    assert retry_after_of(_Obj(retry_after=-1)) == 0.0


def test_retry_after_attribute_wins_over_headers() -> None:
    """The attribute, computed deliberately by the exception's author, wins over headers."""
    assert retry_after_of(_Obj(retry_after=1, headers={"Retry-After": "9"})) == 1.0


@pytest.mark.parametrize(
    "obj",
    [
        _Obj(retry_after=True),
        _Obj(retry_after="5"),
        _Obj(retry_after=float("nan")),
        _Obj(headers=["Retry-After: 5"]),
        _Obj(headers=None, response=_Obj(headers=None)),
        _Obj(headers={}),
        object(),
    ],
)
def test_retry_after_of_unusable(obj: object) -> None:
    """Odd attributes and header containers mean no Retry-After, never an error."""
    assert retry_after_of(obj) is None


def test_retry_after_from_real_requests(session: requests.Session, server: str) -> None:
    """Retry-After is read from a real requests Response and its HTTPError."""
    with session.get(f"{server}/status/503?retry-after=2", timeout=5) as response:
        assert retry_after_of(response) == 2.0
    assert retry_after_of(_requests_error(session, f"{server}/status/429?retry-after=3")) == 3.0


def test_retry_after_from_real_httpx(client: httpx.Client, server: str) -> None:
    """Retry-After and retry-after-ms are read from real httpx responses and errors."""
    response = client.get(f"{server}/status/429?retry-after=3&retry-after-ms=1250", timeout=5)
    assert retry_after_of(response) == 1.25
    assert retry_after_of(_httpx_error(client, f"{server}/status/503?retry-after=0.5")) == 0.5


def test_retry_after_http_date_from_real_urllib(server: str) -> None:
    """An HTTP-date Retry-After is read from the headers of urllib's real HTTPError."""
    date = urllib.parse.quote(email.utils.formatdate(time.time() + 60, usegmt=True))
    seconds = retry_after_of(_urlopen_error(f"{server}/status/503?retry-after={date}"))
    assert seconds is not None
    assert 50 <= seconds <= 60


# --- transient --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), "timeout"),
        (TimeoutExceededError(1.0), "timeout"),
        (ConnectionError(), "network"),
        (ConnectionRefusedError(), "network"),
        (ConnectionResetError(), "network"),
        (BrokenPipeError(), "network"),
    ],
    ids=repr,
)
def test_transient_builtins(exc: Exception, kind: str) -> None:
    """Builtin TimeoutError and ConnectionError (and subclasses) are transient."""
    assert transient.classify(exc) == Verdict(retry=True, trip=True, kind=kind)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ConnectTimeout(), "timeout"),
        (requests.ReadTimeout(), "timeout"),
        (requests.Timeout(), "timeout"),
        (requests.ConnectionError(), "network"),
        (requests.exceptions.SSLError(), "network"),
        (requests.exceptions.ProxyError(), "network"),
        (requests.exceptions.ChunkedEncodingError(), "network"),
        (httpx.ConnectTimeout("x"), "timeout"),
        (httpx.ReadTimeout("x"), "timeout"),
        (httpx.WriteTimeout("x"), "timeout"),
        (httpx.PoolTimeout("x"), "timeout"),
        (httpx.ConnectError("x"), "network"),
        (httpx.ReadError("x"), "network"),
        (httpx.WriteError("x"), "network"),
        (httpx.CloseError("x"), "network"),
        (httpx.RemoteProtocolError("x"), "network"),
        (urllib3.exceptions.ConnectTimeoutError(), "timeout"),
        (urllib3.exceptions.ReadTimeoutError(None, None, "x"), "timeout"),  # type: ignore[arg-type]
        (urllib3.exceptions.NewConnectionError(None, "x"), "network"),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError(), "network"),
    ],
    ids=lambda v: type(v).__module__ + "." + type(v).__name__ if isinstance(v, Exception) else v,
)
def test_transient_requests_httpx_urllib3_classes(exc: Exception, kind: str) -> None:
    """The connection and timeout exceptions of requests, httpx and urllib3 are transient."""
    assert transient.classify(exc) == Verdict(retry=True, trip=True, kind=kind)


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (ClientConnectionError, "network"),
        (ClientOSError, "network"),
        (ClientConnectorError, "network"),
        (ServerDisconnectedError, "network"),
        (ServerTimeoutError, "timeout"),
        (APIConnectionError, "network"),
        (APITimeoutError, "timeout"),
        (Timeout, "timeout"),
        (LiteLLMConnectionError, "network"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_transient_aiohttp_openai_litellm_look_alikes(cls: type[Exception], kind: str) -> None:
    """aiohttp, openai and litellm connection and timeout errors are recognised by MRO names."""
    assert transient.classify(cls()) == Verdict(retry=True, trip=True, kind=kind)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (408, "timeout"),
        (429, "rate_limit"),
        (500, "server"),
        (502, "server"),
        (503, "server"),
        (504, "server"),
    ],
)
def test_transient_statuses(status: int, kind: str) -> None:
    """408, 429, 500, 502, 503, 504 are transient, raised or returned."""
    expected = Verdict(retry=True, trip=True, kind=kind, status=status)
    assert transient.classify(_status_error(status)) == expected
    assert transient.classify(httpx.Response(status)) == expected
    assert transient.classify(ClientResponseError(status)) == expected


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 409, 422, 501, 505, 599])
def test_transient_other_statuses_do_not_match(status: int) -> None:
    """Other statuses, 4xx and 501/505 included, are not transient, yet reported."""
    assert transient.classify(_status_error(status)) == Verdict(status=status)
    assert transient.classify(httpx.Response(status)) == Verdict(status=status)


def test_transient_openai_status_errors() -> None:
    """openai's status errors are classified by status, with retry-after-ms."""
    limited = _openai_error(RateLimitError, 429, **{"retry-after-ms": "1500"})
    assert transient.classify(limited) == Verdict(
        retry=True, trip=True, kind="rate_limit", status=429, retry_after=1.5
    )
    assert transient.classify(_openai_error(InternalServerError, 500)).kind == "server"
    assert transient.classify(_openai_error(BadRequestError, 400)) == Verdict(status=400)


@pytest.mark.parametrize(
    "exc",
    [
        RejectedError("no"),
        CircuitOpenError("api", 3.0),
        RetryExhaustedError(None, 3),
        ValueError("timeout"),
        OSError("connection"),
        requests.HTTPError("404 Client Error"),
        requests.exceptions.InvalidURL(),
        requests.TooManyRedirects(),
        httpx.LocalProtocolError("x"),
        httpx.UnsupportedProtocol("x"),
        httpx.InvalidURL("x"),
        urllib3.exceptions.SSLError(),
        ClientError(),
        APIError(),
    ],
    ids=lambda v: type(v).__module__ + "." + type(v).__name__,
)
def test_transient_leaves_the_rest_alone(exc: Exception) -> None:
    """Rejections, client bugs and other errors are not transient."""
    verdict = transient.classify(exc)
    assert (verdict.retry, verdict.trip, verdict.kind) == (False, False, None)


def test_transient_circuit_open_keeps_retry_after() -> None:
    """A CircuitOpenError is not transient but its retry_after is reported."""
    assert transient.classify(CircuitOpenError("api", 3.0)) == Verdict(retry_after=3.0)


def test_transient_ignores_look_alike_names_elsewhere() -> None:
    """A class named like a client's error, in another package, does not match."""

    class ConnectionError(Exception):
        __module__ = "myapp.errors"

    class Timeout(Exception):
        __module__ = "myapp.errors"

    assert transient.classify(ConnectionError()) is SUCCESS
    assert transient.classify(Timeout()) is SUCCESS


def test_transient_handles_results() -> None:
    """transient classifies results, as it has status rules."""
    assert transient.handles_results is True


def test_transient_always_retries_and_trips() -> None:
    """Every transient rule says retry and trip."""
    assert all(rule.retry and rule.trip for rule in transient.rules)


def test_transient_repr_is_readable() -> None:
    """transient's repr says what its name-based rules recognise."""
    assert "timeout exceptions of requests, httpx, aiohttp, urllib3, openai" in repr(transient)


def test_transient_real_refused_connection(
    session: requests.Session, client: httpx.Client, closed_port: int
) -> None:
    """A refused connection, from real requests and httpx, is a transient network error."""
    url = f"http://127.0.0.1:{closed_port}/"
    with pytest.raises(requests.ConnectionError) as from_requests:
        session.get(url, timeout=5)
    with pytest.raises(httpx.ConnectError) as from_httpx:
        client.get(url, timeout=5)
    for exc in (from_requests.value, from_httpx.value):
        assert transient.classify(exc) == Verdict(retry=True, trip=True, kind="network")


def test_transient_real_read_timeouts(
    session: requests.Session, client: httpx.Client, silent_server: str
) -> None:
    """A server that never answers gives real read timeouts, transient ones."""
    with pytest.raises(requests.ReadTimeout) as from_requests:
        session.get(silent_server, timeout=(5, 0.05))
    with pytest.raises(httpx.ReadTimeout) as from_httpx:
        client.get(silent_server, timeout=httpx.Timeout(5, read=0.05))
    for exc in (from_requests.value, from_httpx.value):
        assert transient.classify(exc) == Verdict(retry=True, trip=True, kind="timeout")


def test_transient_real_dropped_connection(
    session: requests.Session, client: httpx.Client, server: str
) -> None:
    """A server hanging up without answering gives transient network errors."""
    with pytest.raises(requests.ConnectionError) as from_requests:
        session.get(f"{server}/drop", timeout=5)
    with pytest.raises(httpx.RemoteProtocolError) as from_httpx:
        client.get(f"{server}/drop", timeout=5)
    for exc in (from_requests.value, from_httpx.value):
        assert transient.classify(exc).kind == "network"


def test_transient_real_truncated_body(
    session: requests.Session, client: httpx.Client, server: str
) -> None:
    """A body cut short gives requests' ChunkedEncodingError and httpx's RemoteProtocolError."""
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as from_requests:
        session.get(f"{server}/truncate", timeout=5)
    with pytest.raises(httpx.RemoteProtocolError) as from_httpx:
        client.get(f"{server}/truncate", timeout=5)
    for exc in (from_requests.value, from_httpx.value):
        assert transient.classify(exc).kind == "network"


def test_transient_real_status_errors(
    session: requests.Session, client: httpx.Client, server: str
) -> None:
    """Real 503 errors of requests, httpx and urllib are retried with their Retry-After."""
    url = f"{server}/status/503?retry-after=4"
    expected = Verdict(retry=True, trip=True, kind="server", status=503, retry_after=4.0)
    assert transient.classify(_requests_error(session, url)) == expected
    assert transient.classify(_httpx_error(client, url)) == expected
    assert transient.classify(_urlopen_error(url)) == expected


def test_transient_real_404_is_not_retried(
    session: requests.Session, client: httpx.Client, server: str
) -> None:
    """A real 404, raised by requests, httpx or urllib, is not transient."""
    url = f"{server}/status/404"
    for exc in (_requests_error(session, url), _httpx_error(client, url), _urlopen_error(url)):
        assert transient.classify(exc) == Verdict(status=404)


def test_transient_real_returned_responses(
    session: requests.Session, client: httpx.Client, server: str
) -> None:
    """A real 503 response that was returned, not raised, is retryable; a 200 is a success."""
    with session.get(f"{server}/status/503?retry-after=1", timeout=5) as response:
        assert transient.classify(response).retry_after == 1.0
        assert transient.classify(response).retry
    assert transient.classify(client.get(f"{server}/status/503", timeout=5)).kind == "server"
    assert transient.classify(client.get(f"{server}/status/200", timeout=5)) == Verdict(status=200)


def test_message_rule_on_real_response_body(client: httpx.Client, server: str) -> None:
    """message= reads the body of a real response."""
    c = ErrorClassifier([Rule(status=500, message="No provider credentials", retry=False)])
    body = urllib.parse.quote("No provider credentials configured")
    verdict = c.classify(client.get(f"{server}/status/500?body={body}", timeout=5))
    assert (verdict.retry, verdict.trip, verdict.status) == (False, True, 500)


def test_module_imports_no_http_client() -> None:
    """Importing the module imports none of the HTTP clients it recognises."""
    path = pathlib.Path(__file__).parent.parent / "resilience" / "_classify.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('resilience_classify', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted({'requests', 'httpx', 'aiohttp', 'urllib3', 'openai', 'litellm'}"
        " & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- properties against a reference model ----------------------------------------------------


class E1(Exception):
    pass


class E2(E1):
    pass


class E3(Exception):
    pass


class _Response:
    """A minimal response: a status and a text body."""

    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text


_PREDICATES: dict[str, Callable[[object], bool]] = {
    "always": lambda o: True,
    "never": lambda o: False,
    "is_e2": lambda o: isinstance(o, E2),
    "has_a": lambda o: "a" in str(getattr(o, "text", o)),
}
_STATUSES = st.sampled_from([200, 404, 429, 500, 502, 503])
_WORDS = st.sampled_from(["a", "b", "ab", "ba"])


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "exception": draw(st.none() | st.sampled_from([E1, E2, E3, (E2, E3)])),
        "status": draw(st.none() | _STATUSES | st.frozensets(_STATUSES, min_size=1)),
        "message": draw(st.none() | _WORDS),
        "when": draw(st.none() | st.sampled_from(sorted(_PREDICATES))),
        "retry": draw(st.booleans()),
        "trip": draw(st.booleans()),
        "kind": draw(st.none() | st.sampled_from(["x", "y"])),
    }
    if all(spec[k] is None for k in ("exception", "status", "message", "when")):
        spec["status"] = draw(_STATUSES)
    return spec


def _rule(spec: dict[str, Any]) -> Rule:
    when = None if spec["when"] is None else _PREDICATES[spec["when"]]
    return Rule(**{**spec, "when": when})


@st.composite
def _outcomes(draw: st.DrawFn) -> object:
    text = draw(st.text(alphabet="abc", max_size=4))
    status = draw(st.none() | _STATUSES)
    choice = draw(st.sampled_from(["exception", "response", "plain"]))
    if choice == "exception":
        exc = draw(st.sampled_from([E1, E2, E3]))(text)
        if status is not None:
            exc.status_code = status  # type: ignore[attr-defined]
        return exc
    if choice == "response":
        return _Response(draw(_STATUSES), text)
    return draw(st.integers() | st.none())


def _holds(spec: dict[str, Any], outcome: object) -> bool:
    """Spell out the contract naively: does every condition of *spec* hold for *outcome*?"""
    raised = isinstance(outcome, Exception)
    status = getattr(outcome, "status_code", None)
    text = str(outcome) if raised else getattr(outcome, "text", None)
    if spec["exception"] is not None and not (raised and isinstance(outcome, spec["exception"])):
        return False
    wanted = spec["status"]
    if wanted is not None and status not in ({wanted} if isinstance(wanted, int) else wanted):
        return False
    if spec["message"] is not None and (text is None or spec["message"] not in text):
        return False
    return spec["when"] is None or _PREDICATES[spec["when"]](outcome)


def _reference(specs: list[dict[str, Any]], outcome: object) -> Verdict:
    """The first rule whose every condition holds decides; otherwise nothing is to be done."""
    status = getattr(outcome, "status_code", None)
    for spec in specs:
        if _holds(spec, outcome):
            return Verdict(retry=spec["retry"], trip=spec["trip"], kind=spec["kind"], status=status)
    return Verdict(status=status)


@given(st.lists(_specs(), max_size=6), _outcomes())
def test_first_match_wins_like_the_reference(specs: list[dict[str, Any]], outcome: object) -> None:
    """classify agrees with a naive first-match-wins reference on random rules and outcomes."""
    classifier = ErrorClassifier([_rule(spec) for spec in specs])
    assert classifier.classify(outcome) == _reference(specs, outcome)


@given(st.lists(_specs(), max_size=4), st.lists(_specs(), max_size=4), _outcomes())
def test_or_is_left_then_right(
    left: list[dict[str, Any]], right: list[dict[str, Any]], outcome: object
) -> None:
    """(a | b) decides as a when one of a's rules matches, else as b."""
    a = ErrorClassifier([_rule(spec) for spec in left])
    b = ErrorClassifier([_rule(spec) for spec in right])
    a_matches = any(_holds(spec, outcome) for spec in left)
    expected = a.classify(outcome) if a_matches else b.classify(outcome)
    assert (a | b).classify(outcome) == expected


@given(st.lists(_specs(), max_size=6))
def test_handles_results_iff_a_rule_lacks_exception(specs: list[dict[str, Any]]) -> None:
    """handles_results is True exactly when some rule has no exception= condition."""
    classifier = ErrorClassifier([_rule(spec) for spec in specs])
    assert classifier.handles_results == any(spec["exception"] is None for spec in specs)


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_parse_retry_after_integers(n: int) -> None:
    """Any integer delay parses to itself, negatives to 0.0."""
    assert parse_retry_after(str(n)) == max(0.0, float(n))


@given(st.integers(min_value=-1000, max_value=1000))
def test_status_of_accepts_exactly_http_statuses(n: int) -> None:
    """status_of keeps exactly the ints from 100 to 599."""
    assert status_of(_Obj(status_code=n)) == (n if 100 <= n <= 599 else None)
