"""Forking: a child process never inherits a lock of the library held by a thread that is gone."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import resilience as rs
from resilience.engine import fork_safe_lock

from .threads import WAIT, join_all

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only"),
    # Python 3.12+ warns when a process with threads forks: that is the case under test.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

# Seconds the children may take, all together, before one counts as hung (never a speed
# assertion): 20 forked copies of this process share a loaded machine with the parent's
# hammering threads, and only a hang waits this long.
CHILD_WAIT = WAIT
ROOT = Path(__file__).resolve().parent.parent / "resilience"
LOCK_MADE_DIRECTLY = r"threading\.(R?Lock|Condition|Semaphore|BoundedSemaphore)\(|=threading\."


class Boom(Exception):
    """A failure the breaker counts."""


def fork_children(count: int, work: Callable[[], None]) -> list[int]:
    """Fork *count* children that each run *work* and exit; return their exit codes (-1: hung)."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # the child: run, report through the exit code, never return to pytest
            code = 1
            try:
                work()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    codes: dict[int, int] = {}
    give_up = time.monotonic() + CHILD_WAIT
    while len(codes) < count and time.monotonic() < give_up:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling children for the hang timeout: not a backoff under test
    for pid in pids:
        if pid not in codes:  # hung: a lock copied held
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            codes[pid] = -1
    return [codes[pid] for pid in pids]


def test_a_lock_held_by_another_thread_is_free_in_the_child() -> None:
    """#18.3: a fork_safe_lock held by a thread at fork time can be taken in the child."""
    lock = fork_safe_lock()
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            done.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(WAIT)

        def take() -> None:
            if not lock.acquire(timeout=CHILD_WAIT / 2):
                raise RuntimeError("the lock stayed held in the child")

        assert fork_children(1, take) == [0]
        assert lock.locked()  # the parent's holder still holds it
    finally:
        done.set()
        join_all([holder])


def test_fork_while_threads_hammer_a_breaker() -> None:
    """#18.3: 20 children forked while 4 threads use an in-memory breaker all finish."""
    breaker = rs.CircuitBreaker(
        on=Boom, failure_threshold=None, trip=rs.FailureRate(0.99, calls=1000), name="hammered"
    )
    stop = threading.Event()

    def boom() -> None:
        raise Boom

    running = threading.Barrier(5)

    def hammer() -> None:
        running.wait(WAIT)
        while not stop.is_set():
            try:
                breaker.call(boom)
            except Boom:
                pass
            breaker.call(int)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, a lock holder among them
    for thread in threads:
        thread.start()
    running.wait(WAIT)  # every hammer is in its loop before the first fork

    def use() -> None:
        # Half the child's calls fail: the window stays below 0.99 whatever the
        # parent's threads had counted when this child was forked (the first
        # child may be forked before they have counted anything).
        for _ in range(100):
            try:
                breaker.call(boom)
            except Boom:
                pass
            breaker.call(int)
        if breaker.state is not rs.CircuitState.CLOSED:
            raise RuntimeError(breaker.state)

    try:
        codes = fork_children(20, use)
    finally:
        stop.set()
        sys.setswitchinterval(switching)
        join_all(threads)
    assert codes == [0] * 20


def test_every_lock_of_the_library_is_fork_safe() -> None:
    """#18.3: the library makes its locks with fork_safe_lock, never threading.Lock directly."""
    servers = {"emulator.py", "demo.py"}  # test servers and demos: not a user's process state
    direct = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(ROOT.rglob("*.py"))
        if path.name not in servers and path.name != "_fork.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(
            r"threading\.(R?Lock|Condition|Semaphore|BoundedSemaphore)\(|=threading\.", line
        )
    ]
    assert direct == []
