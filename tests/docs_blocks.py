"""The python blocks of a docs page, run as a reader would run them: in order, in one namespace.

Every ```python (and ```pycon) block of every page in docs/ is run by some
test: the test that runs a page's blocks goes through `run_page` or
`run_block`, which record each block they ran in `RAN`, and
`tests/test_docs.py` declares in `RUNNERS` which test files run which page,
then checks (as the session's last test, see tests/conftest.py) that each
block of each page whose runners ran in full was recorded. A page with a
python block and no line in `RUNNERS` fails too.

A block that cannot run as written (a shell session, pseudo-code, a fragment
that needs a live external service) is a visible exception: the line just
before its fence says why, as an HTML comment (invisible in the built site)::

    <!-- not run: needs a live OpenTelemetry collector -->
    ```python
    ...

`run_page` skips such a block, and the check accepts it unrecorded.

A block written as an interactive session (```pycon, or its first line starts
with ``>>>``) is run as a doctest in the page's namespace: the outputs it shows
are compared (a blank line inside it is output; an error shows its
``Traceback (most recent call last):`` line).
"""

from __future__ import annotations

import doctest
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, NamedTuple

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: The (page, block index) of every python block a test ran in this session.
RAN: set[tuple[str, int]] = set()
#: The test files collected in this session, and those of them some tests of were deselected.
COLLECTED: set[str] = set()
PARTIAL: set[str] = set()


class Block(NamedTuple):
    """One fenced block of a page: its dedented source, and why it is not run (or None)."""

    source: str
    not_run: str | None


def python_blocks(page: str) -> list[str]:
    """Return the ```python and ```pycon blocks of ``docs/<page>``, in order (indented too)."""
    return fenced(page, "python")


def text_blocks(page: str) -> list[str]:
    """Return the ```text blocks of ``docs/<page>`` (the outputs a page shows), in order."""
    return fenced(page, "text")


def fenced(page: str, language: str) -> list[str]:
    """Return the blocks of ``docs/<page>`` fenced as *language* (```json, ...), in order."""
    return [block.source for block in blocks(page, language)]


def blocks(page: str, language: str = "python") -> list[Block]:
    """Return the blocks of ``docs/<page>`` fenced as *language*, each with its not-run reason."""
    text = (DOCS / page).read_text()
    found = []
    fence = "(?:python|pycon)" if language == "python" else language  # pycon: a session
    pattern = rf"(?:^ *<!-- not run: ([^\n]*?) -->\n)?^( *)```{fence}\n(.*?)^\2```"
    for match in re.finditer(pattern, text, re.DOTALL | re.MULTILINE):
        indent = len(match.group(2))
        lines = match.group(3).splitlines(keepends=True)
        found.append(Block("".join(line[indent:] for line in lines), match.group(1)))
    return found


def run_block(page: str, source: str, namespace: dict[str, Any]) -> None:
    """Run *source*, one python block of ``docs/<page>`` as a test extracted it; record it run.

    The block is found among the page's blocks by its text (dedented, stripped),
    so a test may extract it its own way (by a marker, a section, a neighbour).
    """
    wanted = textwrap.dedent(source).strip()
    indexes = [
        index
        for index, block in enumerate(blocks(page))
        if textwrap.dedent(block.source).strip() == wanted
    ]
    assert indexes, f"docs/{page} has no python block {wanted[:60]!r}..."
    RAN.update((page, index) for index in indexes)  # run, even if the test expects it to raise
    execute(source, f"docs/{page} block {indexes[0] + 1}", namespace)


def run_page(
    page: str, namespace: dict[str, Any] | None = None, skip: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Run every python block of ``docs/<page>`` in order in *namespace* (updated); return it.

    Each block is compiled under the name ``docs/<page> block N``, so that a
    failure's traceback says which block it came from. A block marked
    ``<!-- not run: ... -->`` is skipped, and so are the blocks numbered in
    *skip* (from 1: the ones another test runs in a namespace of its own).
    """
    found = blocks(page)
    assert found, f"docs/{page} has no python block"
    if namespace is None:  # a module's, as a reader's script has (dataclasses look it up)
        module = types.ModuleType(f"docs_{page.removesuffix('.md').replace('-', '_')}")
        sys.modules[module.__name__] = module
        namespace = module.__dict__
    namespace.setdefault("__name__", f"docs_{page.removesuffix('.md').replace('-', '_')}")
    for index, block in enumerate(found):
        if block.not_run is None and index + 1 not in skip:
            execute(block.source, f"docs/{page} block {index + 1}", namespace)
            RAN.add((page, index))
    return namespace


def execute(source: str, name: str, namespace: dict[str, Any]) -> None:
    """Run one block under *name* in *namespace*: as a doctest if it starts with ``>>>``."""
    if not source.lstrip().startswith(">>>"):
        exec(compile(source, name, "exec"), namespace)
        return
    # A blank line inside a session is output (a doctest would end the expected output there).
    session = re.sub(r"\n(?=\n)", "\n<BLANKLINE>", source.strip("\n")) + "\n"
    test = doctest.DocTestParser().get_doctest(session, namespace, name, name, 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # the test ran on a copy
    assert runner.failures == 0, "".join(report)
