"""Joining the threads (and processes) a test starts: a hang fails the test, never hides."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

WAIT = 60.0  # seconds; a safety net against a hang, never an assertion about speed


class _Joinable(Protocol):
    """A `threading.Thread` or a `multiprocessing.Process`."""

    @property
    def name(self) -> str: ...
    def join(self, timeout: float | None = None) -> None: ...
    def is_alive(self) -> bool: ...


def join_all(threads: Sequence[_Joinable], timeout: float = WAIT) -> None:
    """Join every thread or process within *timeout* seconds in all; fail naming any left."""
    give_up = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(give_up - time.monotonic(), 0.0))
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running after {timeout} s (a hang?): {alive}"
