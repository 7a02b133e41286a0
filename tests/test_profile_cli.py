"""`explain`, ``python -m resilience explain saas-litellm`` and the demo."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from resilience.__main__ import main
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm._explain import schedule
from resilience.profiles.saas_litellm.demo import run


def test_explain_has_the_table_the_map_and_the_schedule() -> None:
    """The explanation lists every table row, every endpoint, and the worst case."""
    text = saas.explain()
    for words in ("InsufficientCreditsError", "Retry-After is a floor", "idempotent endpoints"):
        assert words in text
    for row in saas.ENDPOINTS:
        if row.template != "*":
            assert f"{row.method} {row.template}" in text
    assert "POST /api/jobs/{job_id}/llm-call         60 s     363.75 s     480 s" in text
    assert "GET /api/jobs/{job_id}                   10 s     33.75 s      150 s" in text
    assert "No provider credentials configured" in text


def test_schedule_bounds_the_sleeps() -> None:
    """Sleeps before retries 1 and 2 lie within ±25 % of 1 s and 2 s."""
    assert schedule() == [(0.75, 1.25), (1.5, 2.5)]
    assert schedule(saas.Options(attempts=1)) == []


def test_explain_follows_the_options() -> None:
    """explain() describes the options given, not only the defaults."""
    text = saas.explain(saas.Options(attempts=5, max_retry_after=None))
    assert "5 attempts" in text
    assert "unbounded" in text


def test_explain_follows_retry_ambiguous_and_any_endpoint_map() -> None:
    """With retry_ambiguous=True the table says ambiguous failures are retried; a map
    without a row for the example request is explained without the example."""
    text = saas.explain(saas.Options(retry_ambiguous=True))
    assert "idempotent endpoints only" not in text
    assert "yes (retry_ambiguous=True)" in text
    only_gets = saas.EndpointMap([saas.Endpoint("GET", "*", 5.0, True)])
    text = saas.explain(saas.Options(endpoints=only_gets))
    assert "no example pipeline" in text


def test_command_line_explain() -> None:
    """python -m resilience explain saas-litellm prints the explanation."""
    out = subprocess.run(
        [sys.executable, "-m", "resilience", "explain", "saas-litellm"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == saas.explain()


def test_command_line_refuses_unknown_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown profile is a usage error."""
    with pytest.raises(SystemExit) as caught:
        main(["explain", "other-api"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs_and_compares() -> None:
    """A small demo run prints both columns; the profile never crashes nor pays twice."""
    out = io.StringIO()
    plain, profile = run(workflows=24, workers=4, seed=3, scale=0.005, out=out)
    text = out.getvalue()
    assert "plain (docs' helpers)" in text
    assert "time scale 1/200" in text
    assert plain.succeeded + plain.typed + plain.crashed == 24
    assert profile.succeeded + profile.typed + profile.crashed == 24
    assert profile.crashed == 0
    assert profile.stats is not None
    assert profile.stats.duplicate_paid_calls == 0


def test_demo_command_line_options() -> None:
    """The demo's options are validated."""
    with pytest.raises(SystemExit):
        main(["demo", "--workflows", "0"])


def test_demo_logs_the_profile_run_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    """run(log=True) keeps the default hook for the profile run: its events are logged."""
    with caplog.at_level(logging.INFO, logger="resilience"):
        run(workflows=24, workers=4, seed=3, scale=0.005, out=io.StringIO(), log=True)
    assert any(r.__dict__.get("resilience_event") == "RetryScheduled" for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resilience"):
        run(workflows=8, workers=4, seed=3, scale=0.005, out=io.StringIO())
    assert [r for r in caplog.records if r.name == "resilience"] == []


def test_explain_ends_with_one_requests_pipeline() -> None:
    """The CLI's explanation ends with Pipeline.explain() of an llm-call request."""
    text = saas.explain()
    tail = text.split("The pipeline of one request, as resilience explains it", 1)[1]
    assert "  1. Retry 'saas-litellm': up to 3 attempts" in tail
    assert "  2. Bulkhead 'saas-litellm paid calls': at most 8 calls at once" in tail
    assert "  3. CircuitBreaker 'saas-litellm': opens on 5 consecutive failures" in tail
    assert "  5. Timeout 'saas-litellm': 60 s" in tail
    assert "total time: at most 363.75 s; at most 480 s with Retry-After waits" in tail


def test_explain_names_no_private_predicate_nor_placeholder_id() -> None:
    """Issue 16.3: the explanation shows what rules test, not private names, and no fake UUID."""
    text = saas.explain()
    for private in ("_permanent", "_not_sent", "raw_not_sent", "raw_timeout", "00000000-"):
        assert private not in text
    assert "APITimeoutError if the request was never sent" in text
    assert "POST /api/jobs/{job_id}/llm-call" in text


def test_command_line_explain_help_describes_its_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16.3: `python -m resilience explain --help` says what PROFILE is and which exist."""
    with pytest.raises(SystemExit) as done:
        main(["explain", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "PROFILE" in out
    assert "the profile to explain: saas-litellm" in out
