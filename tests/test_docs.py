"""The pages laid out by need (tutorial, how-to, migration, FAQ, explanation) run as written."""

from __future__ import annotations

from typing import Any

import pytest

import resilience as rs
from resilience.testing import set_testing
from tests.docs_blocks import DOCS, python_blocks, run_page, text_blocks


def test_the_tutorial_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Both parts of the tutorial run in one session on the emulator, and print what they say."""
    rs.set_hooks(())  # its give-ups would log WARNINGs
    namespace: dict[str, Any] = {}
    try:
        with set_testing(True):  # the retries' sleeps: none
            run_page("tutorial.md", namespace)
            run_page("tutorial-profile.md", namespace)
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


@pytest.mark.parametrize("page", ["deadlines.md", "breaker-states.md"])
def test_the_explanation_pages_print_what_they_show(
    page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The explanation pages' examples run and print their text blocks, verbatim."""
    assert _printed(page, capsys) == "".join(text_blocks(page))
