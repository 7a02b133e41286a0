"""The worst case drawn as a timeline by explain() and timeline() (issue #16, item 8)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import resilience as rs
from resilience.__main__ import main
from tests.docs_blocks import run_block

DOCS = Path(__file__).resolve().parent.parent / "docs" / "timeline.md"


def backoff() -> rs.backoff.Backoff:
    return rs.backoff.exponential(initial=1.0, max=8.0, jitter=rs.backoff.proportional(0.25))


def stack(deadline: float | None = 30.0, attempt: float | None = 5.0) -> rs.Pipeline:
    """Timeout(deadline), Retry(4 attempts), Timeout(attempt): each part optional."""
    outer = [] if deadline is None else [rs.Timeout(deadline)]
    inner = [] if attempt is None else [rs.Timeout(attempt)]
    retry = rs.Retry(on=rs.transient, attempts=4, backoff=backoff())
    return rs.compose(*outer, retry, *inner)


def test_a_fixed_pipeline_is_drawn_exactly() -> None:
    """Attempts to their timeout, waits with their jitter, the deadline, the axis."""
    assert stack().timeline() == (
        "Timeline of the worst case (attempts to their limit, waits their longest):\n"
        "  attempt 1         ########                                           :\n"
        "  wait 0.75-1.25 s          --~                                        :\n"
        "  attempt 2                    ########                                :\n"
        "  wait 1.5-2.5 s                       ---~                            :\n"
        "  attempt 3                                #########                   :\n"
        "  wait 3-5 s                                        -----~~~           :\n"
        "  attempt 4                                                 #########  :\n"
        "                    0 s              10 s             20 s             30 s\n"
        "  # an attempt, up to 5 s   - a wait   ~ its jitter (the wait ends in it)\n"
        "  : the deadline, 30 s\n"
        "  the last attempt ends by 28.75 s\n"
        "  a server's Retry-After may lengthen each wait"
    )


def test_explain_ends_with_the_timeline() -> None:
    """explain() shows the drawing after the worst case's text."""
    pipeline = stack()
    assert pipeline.explain().endswith("\n\n" + pipeline.timeline())
    retry = rs.Retry(on=rs.transient, attempts=4, backoff=backoff())
    assert retry.explain().endswith("\n\n" + retry.timeline())


def test_the_drawing_stops_where_retry_gives_up_at_the_deadline() -> None:
    """A wait that would end past the deadline ends the drawing: Retry gives up there."""
    lines = stack(deadline=20.0).timeline().splitlines()
    steps = [line.split()[0] for line in lines[1:6]]
    assert steps == ["attempt", "wait", "attempt", "wait", "attempt"]
    assert lines[-2] == (
        "  gives up at 18.75 s: a wait of up to 5 s would end after the deadline, 20 s"
    )


def test_an_attempt_running_into_the_deadline_is_cut() -> None:
    """The attempt running at the deadline is drawn up to it, and said to be cut."""
    lines = stack(deadline=15.0).timeline().splitlines()
    assert lines[5].startswith("  attempt 3 (cut)")
    assert lines[5].endswith("#:")
    assert lines[-2] == "  attempt 3 is cut at the deadline, 15 s"


def test_attempts_without_a_limit_are_marks() -> None:
    """Without a Timeout inside the Retry, each attempt is one column."""
    text = stack(deadline=None, attempt=None).timeline()
    assert text.startswith("Timeline of the worst case (each wait its longest):\n")
    assert re.search(r"^  attempt 1 +#$", text, re.MULTILINE)
    assert "# an attempt (no limit: drawn as a mark)" in text


def test_a_backoff_without_jitter_has_no_jitter_mark() -> None:
    """Constant waits are all '-', and the legend does not mention jitter."""
    retry = rs.Retry(on=rs.transient, attempts=3, backoff=rs.backoff.constant(2.0))
    text = rs.compose(retry, rs.Timeout(1.0)).timeline()
    assert "~" not in text
    assert "  wait 2 s" in text


def test_many_attempts_elide_the_middle_rows() -> None:
    """Twelve attempts fit in a screen: the middle rows become '...'."""
    retry = rs.Retry(on=rs.transient, attempts=12, backoff=rs.backoff.constant(2.0))
    lines = rs.compose(retry, rs.Timeout(1.0)).timeline().splitlines()
    assert "  ..." in lines
    assert any(line.startswith("  attempt 12 ") for line in lines)
    assert len(lines) < 20


def test_nothing_is_drawn_without_waits() -> None:
    """No Retry (or one attempt): timeline() is empty and explain() has no drawing."""
    pipeline = rs.compose(rs.CircuitBreaker(on=rs.transient), rs.Timeout(1.0))
    assert pipeline.timeline() == ""
    assert "Timeline" not in pipeline.explain()
    assert rs.Retry(on=rs.transient, attempts=1).timeline() == ""


@pytest.mark.parametrize(
    "pipeline",
    [
        stack(),
        stack(deadline=7.0, attempt=0.001),
        stack(deadline=None, attempt=3600.0),
        rs.compose(rs.Timeout(0.5), rs.Retry(on=rs.transient, attempts=9), rs.Timeout(0.01)),
        rs.compose(
            rs.Retry(
                on=rs.transient,
                attempts=5,
                backoff=rs.backoff.exponential(initial=123.456, max=9876.5),
            ),
            rs.Timeout(0.2),
        ),
    ],
    ids=["stack", "tiny attempts", "hour attempts", "tiny deadline", "long waits"],
)
def test_the_drawing_is_ascii_within_78_columns(pipeline: rs.Pipeline) -> None:
    """Whatever the scale, every line is ASCII and fits a terminal with an indent."""
    text = pipeline.timeline()
    assert text.isascii()
    assert max(len(line) for line in text.splitlines()) <= 78


def test_description_waits_are_validated() -> None:
    """A Description's waits must be (shortest, longest) pairs of seconds."""
    assert rs.Description(title="x", waits=[(1, 2)]).waits == ((1.0, 2.0),)
    with pytest.raises(ValueError, match="waits must be pairs 0 <= shortest <= longest"):
        rs.Description(title="x", waits=[(2.0, 1.0)])
    with pytest.raises(ValueError, match="waits must be \\(shortest, longest\\) pairs"):
        rs.Description(title="x", waits=[1.0])


def test_the_command_line_draws_the_profile_timeline() -> None:
    """python -m resilience explain saas-litellm shows one request's timeline in 80 columns."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["explain", "saas-litellm"]) == 0
    text = out.getvalue()
    drawing = text[text.index("Timeline of the worst case") :].splitlines()
    assert any(line.strip().startswith("attempt 3") for line in drawing)
    assert all(len(line) <= 80 and line.isascii() for line in drawing)


def test_the_timeline_page_shows_the_real_output() -> None:
    """Each python block of docs/timeline.md prints the text block after it, verbatim."""
    pairs = re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert len(pairs) == 2, "docs/timeline.md lost an example"
    for code, shown in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_block("timeline.md", code, {})
        assert out.getvalue() == shown
