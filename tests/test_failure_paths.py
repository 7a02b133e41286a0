"""The failure paths made cheap (issue 19), leased probes and the opening's cause (issue 18)."""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import logging
import pickle
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events
from tests.docs_blocks import run_block

from .threads import join_all


class Refused(ConnectionError):
    """What the protected calls raise."""


def refuse() -> str:
    raise Refused("connection refused to sk-abcdefghijklmnop")


@contextlib.contextmanager
def unconfigured_logging() -> Iterator[None]:
    """Logging as an application that configured none sees it: no handler anywhere but ours.

    (In the test's body: pytest adds its capturing handler to the root for the call.)
    """
    root = logging.getLogger()
    ours = logging.getLogger("resilience")
    saved = root.handlers[:], ours.handlers[:], ours.level, root.level
    root.handlers[:] = []
    ours.handlers[:] = [logging.NullHandler()]
    ours.setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:], ours.handlers[:] = saved[0], saved[1]
        ours.setLevel(saved[2])
        root.setLevel(saved[3])


@pytest.fixture
def records_made() -> Iterator[list[logging.LogRecord]]:
    """Every LogRecord created, by any logger."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    yield made
    logging.setLogRecordFactory(factory)


def open_breaker(**options: Any) -> tuple[rs.CircuitBreaker, Callable[[], str]]:
    breaker = rs.CircuitBreaker(on=Refused, name="api", failure_threshold=1, **options)
    fn = breaker(refuse)
    with pytest.raises(Refused):
        fn()
    return breaker, fn


# --- issue 19 item 1, issue 16 item 4: nothing built that nobody sees ------------------


def test_a_rejection_nobody_hears_creates_no_log_record(
    records_made: list[logging.LogRecord],
) -> None:
    """Issue 19: default hooks, no logging configured: a rejection makes no LogRecord."""
    with unconfigured_logging():
        _, fn = open_breaker(clock=FakeClock())
        records_made.clear()
        for _ in range(5):
            with pytest.raises(rs.CircuitOpenError):
                fn()
        assert records_made == []


def test_a_retry_nobody_hears_builds_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: RetryScheduled (INFO) below the effective level is never built."""
    with unconfigured_logging():

        def built(**fields: Any) -> None:
            raise AssertionError(f"an event was built: {fields}")

        monkeypatch.setattr("resilience._retry.RetryScheduled.__init__", built)
        calls: Iterator[Exception | str] = iter([Refused("a"), Refused("b"), "ok"])

        def flaky() -> str:
            item = next(calls)
            if isinstance(item, Exception):
                raise item
            return item

        retry = rs.Retry(on=Refused, attempts=3, backoff=rs.backoff.constant(0.0))
        assert retry.call(flaky) == "ok"


def test_the_library_prints_nothing_when_the_app_configured_no_logging() -> None:
    """Issue 16: a WARNING event in a fresh interpreter reaches no last-resort handler."""
    import subprocess
    import sys

    code = (
        "import resilience as rs\n"
        "b = rs.CircuitBreaker(on=ValueError, name='api')\n"
        "b.open()\n"
        "try:\n    b.call(print)\nexcept rs.CircuitOpenError:\n    print('rejected')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (out.stdout, out.stderr) == ("rejected\n", "")


def test_a_handler_added_later_is_heard_at_once() -> None:
    """The cached answer follows the handlers: one added on the root gets the next record."""
    with unconfigured_logging():
        seen: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        _, fn = open_breaker(clock=FakeClock())
        with pytest.raises(rs.CircuitOpenError):
            fn()  # heard by nobody: the answer is cached
        handler = Keep()
        logging.getLogger().addHandler(handler)
        try:
            with pytest.raises(rs.CircuitOpenError):
                fn()
        finally:
            logging.getLogger().removeHandler(handler)
        assert seen == ["'api' 'refuse': call rejected (the circuit is open)"]


def test_a_null_handler_swapped_for_a_real_one_is_heard() -> None:
    """Replacing our NullHandler by a real handler (same count) is noticed."""
    with unconfigured_logging():
        seen: list[int] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.levelno)

        ours = logging.getLogger("resilience")
        _, fn = open_breaker(clock=FakeClock())
        with pytest.raises(rs.CircuitOpenError):
            fn()
        ours.removeHandler(ours.handlers[0])
        ours.addHandler(Keep())
        with pytest.raises(rs.CircuitOpenError):
            fn()
        assert seen == [logging.WARNING]


def test_a_hook_still_gets_every_rejection() -> None:
    """With a hook listening, rejections are built and delivered as before."""
    _, fn = open_breaker(clock=FakeClock())
    with capture_events() as events, pytest.raises(rs.CircuitOpenError):
        fn()
    assert [type(e).__name__ for e in events] == ["CallRejected"]


# --- issue 19 item 2: classified once, HTTP duck typing skipped --------------------------


def test_a_stack_sharing_a_classifier_classifies_each_failure_once() -> None:
    """Issue 19: Retry over a breaker with one classifier runs its predicate once per failure."""
    seen: list[BaseException] = []

    def counted(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, Refused)

    shared = rs.ErrorClassifier([rs.Rule(exception=Exception, when=counted)])
    retry = rs.Retry(on=shared, attempts=3, backoff=rs.backoff.constant(0.0))
    breaker = rs.CircuitBreaker(on=shared, failure_threshold=10)
    with pytest.raises(Refused):
        rs.compose(retry, breaker).call(refuse)
    assert len(seen) == 3  # three attempts, three failures, each classified once


def test_the_shared_verdict_is_right_when_the_classifiers_differ() -> None:
    """Issue 19: a breaker that trips on it and a Retry that does not retry it disagree rightly."""
    trips = rs.ErrorClassifier([rs.Rule(exception=Refused, retry=False, trip=True)])
    retries = rs.ErrorClassifier([rs.Rule(exception=Refused, retry=True, trip=False)])
    calls: list[int] = []

    def counted() -> str:
        calls.append(1)
        return refuse()

    breaker = rs.CircuitBreaker(on=trips, failure_threshold=5)
    retry = rs.Retry(on=retries, attempts=3, backoff=rs.backoff.constant(0.0))
    with pytest.raises(Refused):
        rs.compose(retry, breaker).call(counted)
    assert len(calls) == 3  # Retry used its own verdict (retry), not the breaker's
    breaker_no_retry = rs.Retry(on=trips, attempts=3, backoff=rs.backoff.constant(0.0))
    with pytest.raises(Refused):
        rs.compose(breaker_no_retry, rs.CircuitBreaker(on=retries)).call(counted)
    assert len(calls) == 4  # and the other way round: not retried


def test_a_plain_exception_is_not_duck_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: a ValueError skips status_of/retry_after_of; one carrying a status does not."""
    asked: list[object] = []
    import resilience._classify as classify

    real = classify.status_of

    def spy(obj: object) -> int | None:
        asked.append(obj)
        return real(obj)

    monkeypatch.setattr(classify, "status_of", spy)
    plain = ValueError("no")
    assert rs.transient.classify(plain) == rs.Verdict()
    assert asked == []
    noted = ValueError("noted")
    noted.add_note("a note is not an HTTP detail")
    assert rs.transient.classify(noted) == rs.Verdict()
    assert asked == []
    carrying = ValueError("with a status")
    carrying.status_code = 503  # type: ignore[attr-defined]
    verdict = rs.transient.classify(carrying)
    assert (verdict.status, verdict.retry, asked) == (503, True, [carrying])


def test_a_class_that_defines_http_details_is_duck_typed() -> None:
    """A class attribute or property named status_code is read, as before."""

    class Upstream(Exception):
        status_code = 429
        headers: ClassVar[dict[str, str]] = {"Retry-After": "7"}

    verdict = rs.transient.classify(Upstream())
    assert (verdict.kind, verdict.status, verdict.retry_after) == ("rate_limit", 429, 7.0)


# --- issue 18 item 6: leased probes ---------------------------------------------------------


def half_open(lease: float = 10.0) -> tuple[rs.CircuitBreaker, FakeClock]:
    clock = FakeClock()
    store = functools.partial(rs.InMemoryCircuitStore, probe_lease=lease)
    breaker = rs.CircuitBreaker(
        on=Refused, failure_threshold=1, reset_timeout=5.0, clock=clock, store=store
    )
    breaker.open()
    clock.advance(5.0)
    return breaker, clock


def test_a_hung_probe_frees_its_place_when_its_lease_expires() -> None:
    """Issue 18: after probe_lease seconds, a new probe is admitted on the fake clock."""
    breaker, clock = half_open(lease=10.0)
    with breaker:  # the first probe is admitted, and hangs (its block never ends here)
        with pytest.raises(rs.CircuitOpenError):
            breaker.call(str)  # its place is taken
        clock.advance(9.9)
        with pytest.raises(rs.CircuitOpenError):
            breaker.call(str)
        clock.advance(0.1)
        assert breaker.call(str) == ""  # a new probe, and it closes the circuit
        assert breaker.state is rs.CircuitState.CLOSED


def test_a_probe_that_returns_after_its_lease_changes_nothing() -> None:
    """Issue 18: the late outcome of an expired probe is ignored, as the Redis store does."""
    breaker, clock = half_open(lease=10.0)
    with pytest.raises(Refused), breaker:
        clock.advance(11.0)  # the probe outlives its lease, then fails
        refuse()
    assert breaker.state is rs.CircuitState.HALF_OPEN  # not reopened by a probe that expired
    assert breaker.call(str) == ""
    assert breaker.state is rs.CircuitState.CLOSED  # type: ignore[comparison-overlap]


def test_the_default_lease_is_the_redis_stores() -> None:
    """60 s, as RedisStore's probe_lease; a bad value is refused at construction."""
    breaker, clock = half_open(lease=60.0)
    with breaker:
        clock.advance(59.0)
        with pytest.raises(rs.CircuitOpenError):
            breaker.call(str)
    with pytest.raises(ValueError, match="probe_lease"):
        rs.CircuitBreaker(
            on=Refused, store=functools.partial(rs.InMemoryCircuitStore, probe_lease=0.0)
        )


def test_threads_share_the_probe_places_of_expired_leases() -> None:
    """Issue 18: 8 threads race for one expired lease's place: exactly one new probe runs."""
    breaker, clock = half_open(lease=10.0)
    admitted: list[int] = []
    tried = threading.Semaphore(0)
    release = threading.Event()
    with breaker:  # a hung probe holds the only place
        clock.advance(10.0)
        start = threading.Barrier(8)

        def probe(n: int) -> None:
            start.wait()
            try:
                with breaker:
                    admitted.append(n)
                    tried.release()
                    release.wait(10.0)  # hold the place until every thread has tried
            except rs.CircuitOpenError:
                tried.release()

        threads = [threading.Thread(target=probe, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert tried.acquire(timeout=10.0)
        release.set()
        join_all(threads)
    assert len(admitted) == 1


# --- issue 18 item 7: what opened the circuit -----------------------------------------------


def test_circuit_open_error_says_what_opened_the_circuit() -> None:
    """Issue 18: the type and message (redacted) of the opening failure, in the message."""
    clock = FakeClock()
    _, fn = open_breaker(clock=clock)
    with pytest.raises(rs.CircuitOpenError) as caught:
        fn()
    error = caught.value
    assert (error.failure_type, error.failure_message) == (
        "Refused",
        "connection refused to sk-***",
    )
    assert str(error) == (
        "circuit 'api' is open; retry after 60 s; opened by Refused: connection refused to sk-***"
    )
    assert not any(isinstance(v, BaseException) for v in vars(error).values())


def test_circuit_open_error_pickles_with_its_cause() -> None:
    """Issue 18: pickling and copying keep the cause, the message and the arguments."""
    error = rs.CircuitOpenError("api", 3.0, "Refused", "connection refused")
    for clone in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
        assert (clone.failure_type, clone.failure_message, clone.args) == (
            "Refused",
            "connection refused",
            error.args,
        )
        assert str(clone) == str(error)


def test_a_circuit_opened_by_hand_names_no_cause() -> None:
    """open() is no failure: the message says only that the circuit is open."""
    breaker = rs.CircuitBreaker(on=Refused, name="api", clock=FakeClock())
    breaker.open()
    with pytest.raises(rs.CircuitOpenError) as caught:
        breaker.call(str)
    assert caught.value.failure_type is None
    assert str(caught.value) == "circuit 'api' is open; retry after 60 s"


def test_a_failed_probe_becomes_the_cause() -> None:
    """The failure that reopened the circuit is the one shown."""
    breaker, _ = half_open()

    def timed_out() -> str:
        raise Refused("probe failed")

    with pytest.raises(Refused):
        breaker.call(timed_out)
    with pytest.raises(rs.CircuitOpenError, match="opened by Refused: probe failed"):
        breaker.call(str)


# --- issue 19 item 4: memory ---------------------------------------------------------------


def bytes_per(make: Callable[[int], object], count: int = 10_000) -> float:
    """Bytes traced per object made by *make* (the list that keeps them is made before)."""
    kept: list[object] = [None] * count
    # One made first, untraced: what the first use imports or caches once (modules
    # loaded lazily, #19.5) is not a cost per object.
    make(0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):
            kept[n] = make(n)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return (after - before) / count


def test_a_breaker_after_its_first_call_costs_at_most_300_bytes() -> None:
    """Issue 19: 10,000 breakers sharing a classifier, each called once: <= 300 B each."""
    shared = rs.ErrorClassifier([rs.Rule(exception=Refused)])

    def used(n: int) -> rs.CircuitBreaker:
        breaker = rs.CircuitBreaker(on=shared)
        breaker.call(int)
        return breaker

    assert bytes_per(used) <= 300


def test_a_decorated_function_costs_at_most_a_closure_and_200_bytes() -> None:
    """Issue 19: a breaker's decorated function, called once, <= a wraps closure + 200 B."""
    breaker = rs.CircuitBreaker(on=Refused)

    def closure(fn: Callable[[], int]) -> Callable[[], int]:
        @functools.wraps(fn)
        def wrapper() -> int:
            return fn()

        return wrapper

    functions = [(lambda: 1) for _ in range(10_000)]
    plain = bytes_per(lambda n: closure(functions[n]))

    def decorated(n: int) -> Callable[[], int]:
        fn = breaker(functions[n])
        fn()
        return fn

    assert bytes_per(decorated) <= plain + 200


# --- issue 19 item 5: import time ----------------------------------------------------------


# What `import resilience` leaves for first use: every module but those the
# success path of a Retry needs (issue 19 item 5).
LAZY_MODULES = (
    "asyncio",
    "wrapt",
    "typing_extensions",
    "resilience.limits",
    "resilience.deadline",
    "resilience._backoffs",
    "resilience._breaker",
    "resilience._budget",
    "resilience._bulkhead",
    "resilience._circuit",
    "resilience._explain",
    "resilience._fallback",
    "resilience._gate",
    "resilience._hedge",
    "resilience._metrics",
    "resilience._ratelimit",
    "resilience._timeout",
)


def run_fresh(code: str) -> list[str]:
    """Run *code* in a fresh interpreter; return the lines it prints."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_import_resilience_leaves_what_the_success_path_does_not_need() -> None:
    """Issue 19: asyncio, wrapt, the breaker, Timeout, the rarer policies load on first use."""
    code = (
        "import sys, resilience as rs\n"
        f"print([m for m in {LAZY_MODULES!r} if m in sys.modules])\n"
        "print(rs.Bulkhead.__module__, rs.limits.__name__, 'Hedge' in dir(rs))\n"
        "import asyncio\n"
        "print(asyncio.run(rs.Timeout(1.0).acall(asyncio.sleep, 0, 'ok')))\n"
    )
    assert run_fresh(code) == ["[]", "resilience resilience.limits True", "ok"]


def test_a_retry_call_loads_nothing_it_does_not_use() -> None:
    """Issue 19: building a Retry and calling through it imports none of the deferred modules."""
    code = (
        "import sys, resilience as rs\n"
        "retry = rs.Retry(on=rs.transient, attempts=2, backoff=rs.backoff.DEFAULT)\n"
        "print(retry.call(lambda: 'ok'))\n"
        f"print([m for m in {LAZY_MODULES!r} if m in sys.modules])\n"
    )
    assert run_fresh(code) == ["ok", "[]"]


def test_every_deferred_name_resolves_however_it_is_named() -> None:
    """Issue 19: a deferred name works as rs.X, from resilience import X, and is in dir()."""
    code = (
        "import resilience as rs, resilience.backoff as backoff, pickle\n"
        "from resilience import CircuitBreaker, Description, deadline\n"
        "from resilience.backoff import linear\n"
        "print(CircuitBreaker is rs.CircuitBreaker, deadline.__name__, Description.__module__)\n"
        "print(sorted(set(rs.__all__) - set(dir(rs))),"
        " sorted(set(backoff.__all__) - set(dir(backoff))))\n"
        "print(all(getattr(rs, name) is not None for name in rs.__all__))\n"
        "curve = rs.backoff.constant(1.0, jitter=rs.backoff.proportional(0.5))\n"
        "print(type(curve).__module__, pickle.loads(pickle.dumps(curve)) == curve, linear(1.0))\n"
    )
    assert run_fresh(code) == [
        "True resilience.deadline resilience",
        "[] []",
        "True",
        "resilience.backoff True linear(initial=1.0, step=1.0, max=None, jitter=none)",
    ]


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    """The deferring __getattr__ of resilience and resilience.backoff knows its names only."""
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        rs.Nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        rs.backoff.nope  # type: ignore[attr-defined]  # noqa: B018


def test_the_breaker_docs_lease_example_runs_as_written() -> None:
    """docs/breaker.md's example of leased probes and of the opening's cause runs as is."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "breaker.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.DOTALL)
    [block] = [b for b in blocks if "probe_lease" in b]
    run_block("breaker.md", block, {"__name__": "breaker_doc"})
