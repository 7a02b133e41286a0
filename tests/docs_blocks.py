"""The python blocks of a docs page, run as a reader would run them: in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    """Return the ```python blocks of ``docs/<page>``, in order (indented ones included)."""
    return fenced(page, "python")


def text_blocks(page: str) -> list[str]:
    """Return the ```text blocks of ``docs/<page>`` (the outputs a page shows), in order."""
    return fenced(page, "text")


def fenced(page: str, language: str) -> list[str]:
    """Return the blocks of ``docs/<page>`` fenced as *language* (```json, ...), in order."""
    text = (DOCS / page).read_text()
    blocks = []
    pattern = rf"^( *)```{language}\n(.*?)^\1```"
    for match in re.finditer(pattern, text, re.DOTALL | re.MULTILINE):
        indent = len(match.group(1))
        lines = match.group(2).splitlines(keepends=True)
        blocks.append("".join(line[indent:] for line in lines))
    return blocks


def run_page(page: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every python block of ``docs/<page>`` in order in *namespace* (updated); return it.

    Each block is compiled under the name ``docs/<page> block N``, so that a
    failure's traceback says which block it came from.
    """
    blocks = python_blocks(page)
    assert blocks, f"docs/{page} has no python block"
    if namespace is None:
        namespace = {}
    namespace.setdefault("__name__", f"docs_{page.removesuffix('.md').replace('-', '_')}")
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/{page} block {number}", "exec"), namespace)
    return namespace
