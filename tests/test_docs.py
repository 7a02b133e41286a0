"""The pages laid out by need (tutorial, how-to, migration, FAQ, explanation) run as written."""

from __future__ import annotations

import http.server
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import resilience as rs
from resilience.engine import SYSTEM_CLOCK
from resilience.testing import set_testing
from tests import docs_blocks
from tests.docs_blocks import DOCS, fenced, python_blocks, run_page, text_blocks


def test_the_tutorial_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial's three parts run in one session on the emulator, and print it all."""
    rs.set_hooks(())  # its give-ups would log WARNINGs
    namespace: dict[str, Any] = {}
    try:
        with set_testing(True):  # the retries' sleeps: none
            for page in ["tutorial.md", "tutorial-limits.md", "tutorial-profile.md"]:
                run_page(page, namespace)
    finally:
        if "emu" in namespace:
            namespace["emu"].stop()
    out = capsys.readouterr().out
    assert "422 ['body', 'model']" in out
    assert "failed: 500\nrejected at once: circuit 'saas' is open" in out
    assert "422 [FieldError(loc=('body', 'model'), msg='Field required', type='missing')]" in out
    assert "request sent: True\n7 0 1\n" in out
    assert out.count("You said: Summarise: the quarterly report.") == 6


def test_every_page_block_is_found_with_its_indent() -> None:
    """The block finder returns indented blocks dedented, and fenced text blocks not at all."""
    blocks = python_blocks("metrics.md")
    assert any(block.startswith("metrics = rs.MetricsCollector()\n") for block in blocks)
    assert all("```" not in block for block in blocks)
    assert DOCS.is_dir()


def _printed(page: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run *page* with logging hooks off; return what it printed."""
    rs.set_hooks(())
    run_page(page)
    return capsys.readouterr().out


def test_the_request_bodies_page_runs_and_shows_its_422s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every body of saas-litellm-requests.md is accepted; the 422s it shows are the real ones."""
    out = _printed("saas-litellm-requests.md", capsys)
    assert out.endswith(text_blocks("saas-litellm-requests.md")[-1])


def test_the_polling_page_runs_and_shows_the_real_give_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """polling.md's examples run, and the give-up it shows is the real message."""
    assert _printed("polling.md", capsys) == text_blocks("polling.md")[0]


def test_the_faq_examples_run() -> None:
    """Every python block of faq.md runs as written, on its fake clock."""
    rs.set_hooks(())
    namespace = run_page("faq.md")
    assert namespace["breaker"].state is rs.CircuitState.OPEN
    assert namespace["clock"].sleeps == []


def test_the_retry_after_page_runs() -> None:
    """retry-after.md's floor, backoff and cap examples hold."""
    rs.set_hooks(())
    assert run_page("retry-after.md")["sleeps_for"]("5") == [5.0]


@pytest.mark.parametrize("page", ["deadlines.md", "breaker-states.md", "explain.md"])
def test_the_explanation_pages_print_what_they_show(
    page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The explanation pages' examples run and print their text blocks, verbatim."""
    assert _printed(page, capsys) == "".join(text_blocks(page))


# --- migration guides: the peers' code and ours, run side by side -------------


@pytest.mark.parametrize(
    "page", ["migrate-tenacity.md", "migrate-stamina.md", "migrate-backoff.md"]
)
def test_a_migration_guides_before_and_after_sleep_alike(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer's decorator and its translation make the same attempts and the same sleeps."""
    import logging

    import stamina

    rs.set_hooks(())
    stamina.instrumentation.set_on_retry_hooks([])
    monkeypatch.setattr(logging.getLogger("backoff"), "disabled", True)
    peer: list[float] = []
    ours: list[float] = []
    monkeypatch.setattr(time, "sleep", peer.append)  # tenacity, stamina and backoff sleep so
    monkeypatch.setattr(type(SYSTEM_CLOCK), "sleep", staticmethod(ours.append))
    try:
        namespace = run_page(page)
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
    assert {"get_before", "get_after"} <= namespace.keys()  # each asserted its "data"
    assert peer == ours == [1.0, 2.0, 4.0]


def test_the_breaker_migration_shows_the_real_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    """pybreaker, circuitbreaker and rs.CircuitBreaker produce the outcomes the page shows."""
    assert _printed("migrate-pybreaker.md", capsys) == text_blocks("migrate-pybreaker.md")[0]


class _State:
    """The part of tenacity's RetryCallState its waits read."""

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


def test_the_tenacity_name_map_translates_waits_exactly() -> None:
    """wait_fixed, wait_exponential and wait_incrementing map onto the curves the page names."""
    import tenacity

    rng = random.Random(0)
    pairs: list[tuple[Any, Any]] = [
        (tenacity.wait_fixed(3), rs.backoff.constant(3.0)),
        (
            tenacity.wait_exponential(multiplier=0.5, max=10, exp_base=3),
            rs.backoff.exponential(initial=0.5, max=10.0, multiplier=3.0, jitter=rs.backoff.none),
        ),
        (tenacity.wait_incrementing(2, 3, 10), rs.backoff.linear(2.0, step=3.0, max=10.0)),
    ]
    for theirs, mine in pairs:
        for n in range(1, 8):
            assert theirs(_State(n)) == pytest.approx(mine(n, 0.0, rng))


def test_the_tenacity_name_map_keeps_wait_randoms_range() -> None:
    """wait_random(a, b) and its translation draw from the same interval."""
    low, high = 1.0, 3.0
    mine = rs.backoff.constant(
        (low + high) / 2, jitter=rs.backoff.proportional((high - low) / (low + high))
    )
    draws = [mine(1, 0.0, random.Random(seed)) for seed in range(2000)]
    assert low <= min(draws) < low + 0.05
    assert high - 0.05 < max(draws) <= high


def test_the_exclusion_rules_of_the_maps_retry_and_count_as_they_say() -> None:
    """retry_if_not_exception_type and pybreaker's exclude translate to these verdicts."""
    not_key_error = rs.Rule(exception=KeyError, retry=False) | rs.Rule(exception=Exception)
    assert not not_key_error.classify(KeyError("k")).retry
    assert not_key_error.classify(ConnectionError()).retry
    exclude = rs.Rule(exception=KeyError, trip=False) | rs.Rule(exception=Exception)
    assert not exclude.classify(KeyError("k")).trip
    assert exclude.classify(ConnectionError()).trip


def test_the_backoff_name_map_translates_expo_exactly() -> None:
    """backoff.expo(base, factor, max_value) yields the delays of the exponential the map names."""
    import backoff

    expo = backoff.expo(base=3, factor=0.5, max_value=10)
    next(expo)  # backoff primes its generators and discards the first value
    rng = random.Random(0)
    mine = rs.backoff.exponential(initial=0.5, max=10.0, multiplier=3.0, jitter=rs.backoff.none)
    assert [next(expo) for _ in range(6)] == [mine(n, 0.0, rng) for n in range(1, 7)]


# --- getting started, and the pages split out of observability.md ----------------


def test_the_composition_examples_run() -> None:
    """composition.md's decorators, runs and full stack work as written."""
    rs.set_hooks(())
    with set_testing(True):  # the full stack's retries: no sleeps
        namespace = run_page("composition.md")
    assert namespace["create_job"]({"job_type": "chat"}) == {"job_id": "job-1", "job_type": "chat"}
    assert namespace["metrics"].snapshot()["answer"].outcomes == {"network": 1}


def test_the_testing_pages_examples_run() -> None:
    """testing.md's fake clock, testing switch and event capture work as written."""
    rs.set_hooks(())
    namespace = run_page("testing.md")
    assert namespace["clock"].sleeps == [2.0, 2.0, 2.0, 2.0]  # connect, then always_down


def test_the_home_pages_example_runs() -> None:
    """index.md's example decorates as written."""
    assert callable(run_page("index.md")["create_job"])


def test_the_getting_started_examples_run() -> None:
    """Every python block of getting-started.md runs as written, in order."""
    rs.set_hooks(())
    namespace = run_page("getting-started.md")
    assert namespace["clock"].sleeps == [2.0, 2.0]
    assert namespace["status"] == "connected"


def test_the_metrics_pages_run_and_show_the_real_snapshot() -> None:
    """metrics.md runs; metrics-snapshots.md's JSON is its scenario's snapshot, exactly."""
    rs.set_hooks(())
    run_page("metrics.md")
    rs.set_hooks(())
    namespace = run_page("metrics-snapshots.md")
    shown = json.loads(fenced("metrics-snapshots.md", "json")[0])
    assert shown == namespace["metrics"].snapshot().as_dict()


def test_the_opentelemetry_example_reports_its_call() -> None:
    """opentelemetry.md's pipeline records its call on the SDK's reader."""
    namespace = run_page("opentelemetry.md")
    data = namespace["reader"].get_metrics_data()
    names = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "resilience.call.duration" in names


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Put the root and the resilience loggers back as they were."""
    root, ours = logging.getLogger(), logging.getLogger("resilience")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.filters[:], ours.level)
    yield
    root.handlers[:], ours.handlers[:], ours.filters[:] = saved[0], saved[2], saved[3]
    root.setLevel(saved[1])
    ours.setLevel(saved[4])


@pytest.mark.usefixtures("logging_restored")
def test_the_logging_page_logs_openings_as_json_and_drops_rejections(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """logging.md's set-up, run as written, logs a circuit opening as JSON and no rejection."""
    run_page("logging.md")
    breaker = rs.CircuitBreaker(on=ConnectionError, name="api", failure_threshold=1)

    def down() -> None:
        raise ConnectionError("refused")

    for _ in range(2):
        with pytest.raises((ConnectionError, rs.CircuitOpenError)):
            breaker.call(down)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    assert [line["resilience_event"] for line in lines] == ["CircuitOpened"]


# --- the reference: every public name is rendered from its docstring --------------


def _public_modules() -> list[str]:
    """Every module of the package whose dotted name has no private part."""
    import pkgutil

    names = ["resilience"]
    for info in pkgutil.walk_packages(rs.__path__, "resilience."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _defined_in(module: Any) -> set[str]:
    """The names a module's own source defines at top level (not the ones it imports)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(Path(module.__file__).read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_public_name_is_rendered_in_the_reference() -> None:
    """Each name of each public module's __all__ has a `::: module.name` directive in docs/.

    A `::: module` directive renders the names the module defines itself; the
    ones it re-exports from private modules need their own directive, or a
    place in the directive's explicit ``members:`` list (this rule matches
    what mkdocstrings renders, checked against a built site).
    """
    import importlib

    text = "\n".join(page.read_text() for page in DOCS.glob("*.md"))
    directives = set(re.findall(r"^::: ([\w.]+)", text, re.MULTILINE))
    for module, members in re.findall(
        r"^::: ([\w.]+)\n    options:\n(?:      .*\n)*?      members:\n((?:        - \w+\n)+)",
        text,
        re.MULTILINE,
    ):
        directives |= {f"{module}.{member}" for member in re.findall(r"- (\w+)", members)}
    missing = []
    for name in _public_modules():
        module = importlib.import_module(name)
        whole = name in directives
        local = _defined_in(module) if whole else set()
        missing += [
            f"{name}.{member}"
            for member in module.__all__
            if f"{name}.{member}" not in directives and member not in local
        ]
    assert missing == []


# --- the reference and how-to pages, run as written --------------------------------


@pytest.mark.parametrize(
    "page",
    [
        "backoff.md",
        "breaker.md",
        "classifier.md",
        "events.md",
        "policies.md",
        "writing-policies.md",
    ],
)
def test_a_pages_examples_run_as_written(page: str) -> None:
    """Every python block of the page runs in order; its sessions show what it prints."""
    rs.set_hooks(())
    assert run_page(page)["rs"] is rs


class _Stdout:
    """A stream that writes to whatever sys.stdout is when written to (a doctest's capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        """Nothing buffered."""


@pytest.mark.usefixtures("logging_restored")
def test_the_bulkhead_pages_sessions_show_their_real_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bulkhead.md runs; its sessions print what they show, warnings as bare messages."""
    handler = logging.StreamHandler(_Stdout())  # as with no logging configured
    handler.setLevel(logging.WARNING)
    ours = logging.getLogger("resilience")
    monkeypatch.setattr(ours, "propagate", False)
    ours.addHandler(handler)
    assert run_page("bulkhead.md")["paid_calls"].name == "paid-calls"


def test_the_retry_pages_per_kind_example_sleeps_as_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """retry.md's examples run; the per-kind one sleeps 5, 10, 20, 40, 60 s and explains itself."""
    rs.set_hooks(())
    assert run_page("retry.md")["clock"].sleeps == [5.0, 10.0, 20.0, 40.0, 60.0]
    assert "kind 'rate_limit': up to 6 attempts" in capsys.readouterr().out


def test_the_integrations_page_sends_relative_to_its_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """integrations.md runs as written; its billing session's GET goes to base_url + path."""
    import requests
    import requests.adapters

    sent: list[str] = []

    def send(adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        sent.append(str(request.url))  # billing.example.com is not reached: answered here
        response = requests.Response()
        response.status_code, response.url, response.request = 200, str(request.url), request
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    run_page("integrations.md")
    assert sent == ["https://billing.example.com/v1/invoices"]


class _Lines(http.server.BaseHTTPRequestHandler):
    """Answers GET and POST: a job's JSON under /api/, else two lines of text."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"job_id": "job-1"}' if self.path.startswith("/api/") else b"one\ntwo\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def lines_server() -> Iterator[str]:
    """A local HTTP server of jobs and lines (`_Lines`); yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lines)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_streams_pages_examples_read_their_lines(
    lines_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """streams.md's async and sync streams, run as written on a local server, print its lines."""
    rs.set_hooks(())
    run_page("streams.md", {"BASE_URL": lines_server})
    assert capsys.readouterr().out == "one\ntwo\none\ntwo\n"


def test_the_timeouts_pages_examples_fetch_their_jobs(lines_server: str) -> None:
    """timeouts.md's examples, run as written on a local server, get the jobs they ask for."""
    namespace = run_page("timeouts.md", {"BASE_URL": lines_server})
    assert namespace["job"] == {"job_id": "job-1"}
    assert namespace["jobs"] == [{"job_id": "job-1"}] * 3


def test_the_profile_page_runs_on_the_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    """profile-saas-litellm.md's examples run on the emulator; the workflow test it shows passes.

    Its stream breaker example runs in test_profile_scoping.py, on a stream of its own.
    """
    import asyncio

    from resilience.profiles import saas_litellm as saas
    from resilience.profiles.saas_litellm.emulator import Emulator

    rs.set_hooks(())
    with Emulator(failure_latency=(0.0, 0.0), stream_bug=False) as emu:
        namespace: dict[str, Any] = {
            "API_URL": emu.url,
            "VIRTUAL_KEY": emu.virtual_key,
            "TEAM": "acme-corp",
            "__name__": "docs_profile",
        }
        run_page("profile-saas-litellm.md", namespace, skip=(6,))
        assert namespace["create_job"]({"team_id": "acme-corp", "job_type": "chat"})["job_id"]

        async def streamed_and_guarded() -> None:
            async with saas.async_client(emu.url, emu.virtual_key) as aclient:
                await namespace["astream"](aclient)
                await namespace["guarded"](aclient, namespace["job_id"])

        asyncio.run(streamed_and_guarded())
    printed = capsys.readouterr().out
    assert "saas-litellm https://saas-litellm.example.com llm model='gpt-4o-mini'" in printed

    answers: list[str] = []

    def run_my_workflow(api: Any) -> None:
        """One LLM call: the gateway's 503 the page scripts is retried, the answer arrives."""
        job = api.post("/api/jobs/create", json={"team_id": "acme-corp", "job_type": "chat"})
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        answer = api.post(f"/api/jobs/{job.json()['job_id']}/llm-call", json=chat)
        answers.append(answer.json()["response"]["finish_reason"])

    namespace["run_my_workflow"] = run_my_workflow
    namespace["test_my_workflow"]()
    assert answers == ["stop"]


# --- every python block of every page is run by a test ------------------------------

#: Which test files run the python blocks of each page (through tests/docs_blocks.py).
RUNNERS: dict[str, tuple[str, ...]] = {
    "backoff.md": ("test_docs.py",),
    "breaker-states.md": ("test_docs.py",),
    "breaker.md": ("test_docs.py",),
    "bulkhead.md": ("test_docs.py",),
    "classifier.md": ("test_docs.py",),
    "composition.md": ("test_docs.py",),
    "deadlines.md": ("test_docs.py",),
    "events.md": ("test_docs.py",),
    "explain.md": ("test_docs.py",),
    "fallback.md": ("test_fallback.py",),
    "faq.md": ("test_docs.py",),
    "fleet.md": ("test_redis_ratelimit.py",),
    "getting-started.md": ("test_docs.py",),
    "hedge.md": ("test_hedge.py",),
    "index.md": ("test_docs.py",),
    "integrations.md": ("test_docs.py",),
    "logging.md": ("test_docs.py",),
    "metrics-snapshots.md": ("test_docs.py",),
    "metrics.md": ("test_docs.py",),
    "migrate-backoff.md": ("test_docs.py",),
    "migrate-pybreaker.md": ("test_docs.py",),
    "migrate-stamina.md": ("test_docs.py",),
    "migrate-tenacity.md": ("test_docs.py",),
    "opentelemetry.md": ("test_docs.py",),
    "policies.md": ("test_docs.py",),
    "polling.md": ("test_docs.py",),
    "profile-saas-litellm.md": ("test_docs.py", "test_profile_scoping.py"),
    "rate-limits.md": ("test_ratelimit_docs.py",),
    "retry-after.md": ("test_docs.py",),
    "retry-budgets.md": ("test_budget.py",),
    "retry.md": ("test_docs.py",),
    "saas-litellm-requests.md": ("test_docs.py",),
    "streams.md": ("test_docs.py",),
    "testing.md": ("test_docs.py",),
    "timeline.md": ("test_timeline.py",),
    "timeouts.md": ("test_docs.py",),
    "tracing.md": ("test_tracing.py",),
    "trio-anyio.md": ("test_aio.py",),
    "tutorial-limits.md": ("test_docs.py",),
    "tutorial-profile.md": ("test_docs.py",),
    "tutorial.md": ("test_docs.py",),
    "writing-policies.md": ("test_docs.py",),
}


def test_every_page_with_python_blocks_names_the_test_file_that_runs_them() -> None:
    """RUNNERS lists exactly the pages that have python blocks, each with an existing file."""
    pages = {page.name for page in DOCS.glob("*.md") if python_blocks(page.name)}
    assert pages == RUNNERS.keys()
    tests = Path(__file__).parent
    assert all((tests / runner).is_file() for runners in RUNNERS.values() for runner in runners)


def test_the_blocks_not_run_are_few_and_say_why() -> None:
    """Each block marked `<!-- not run: reason -->` gives a reason; there are a few at most."""
    marked = {
        (page.name, index): block.not_run
        for page in DOCS.glob("*.md")
        for index, block in enumerate(docs_blocks.blocks(page.name))
        if block.not_run is not None
    }
    assert all(reason.strip() for reason in marked.values())
    assert len(marked) <= 8  # a few conscious exceptions, not a way around the rule


def test_a_session_block_compares_its_output() -> None:
    """A `>>>` block is a doctest: a blank line is output, a wrong output fails."""
    namespace: dict[str, Any] = {}
    docs_blocks.execute(">>> x = 2\n>>> print(f'{x}\\n\\n{x}')\n2\n\n2\n", "ok", namespace)
    assert namespace["x"] == 2
    with pytest.raises(AssertionError, match="Expected:"):
        docs_blocks.execute(">>> 1 + 1\n3\n", "wrong", {})


def test_every_docs_block_is_run_by_a_test() -> None:
    """Every python block of a page whose runner ran in full was run, unless marked not run.

    The session's last test (tests/conftest.py moves it there): a runner that
    is not collected, or whose tests were deselected, leaves its pages unchecked.
    """
    checked = {
        page
        for page, runners in RUNNERS.items()
        if all(r in docs_blocks.COLLECTED and r not in docs_blocks.PARTIAL for r in runners)
    }
    assert checked or "test_docs.py" in docs_blocks.PARTIAL
    unrun = [
        f"docs/{page} block {index + 1}"
        for page in sorted(checked)
        for index, block in enumerate(docs_blocks.blocks(page))
        if block.not_run is None and (page, index) not in docs_blocks.RAN
    ]
    assert unrun == [], "\n".join(unrun)
