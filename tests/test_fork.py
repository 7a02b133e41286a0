"""Forking: a child process never inherits a lock of the library held by a thread that is gone."""

from __future__ import annotations

import contextlib
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
from resilience.testing import FakeClock

from .forms import eventually
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


def fork_children(
    count: int, work: Callable[[], None], fork: Callable[[], int] = os.fork
) -> list[int]:
    """
    Fork *count* children that each run *work* and exit; return their exit codes (-1: hung).

    *fork* forks (``os.fork``, or a function calling it inside a policy).
    """
    pids = []
    for _ in range(count):
        pid = fork()
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


# --- gates that count the calls in flight (issue 19) ----------------------------------------


def bulkhead_of(slots: int, adaptive: bool) -> rs.Bulkhead:
    """A bulkhead of *slots* slots: a fixed limit, or an adaptive one pinned there."""
    if adaptive:
        return rs.Bulkhead(max_concurrent=rs.limits.AIMD(initial=slots, maximum=slots))
    return rs.Bulkhead(max_concurrent=slots)


ADAPTIVE = pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])


def take_every_slot(bulkhead: rs.Bulkhead, slots: int) -> None:
    """In the child: *slots* calls at once get in, one more is refused, and all give back."""
    with contextlib.ExitStack() as stack:
        for _ in range(slots):
            stack.enter_context(bulkhead)
        if bulkhead.running != slots:
            raise RuntimeError(f"{bulkhead.running} running, not {slots}")
        try:
            with bulkhead:
                raise RuntimeError("a call beyond the limit got in")
        except rs.BulkheadFullError:
            pass
    if bulkhead.running != 0:
        raise RuntimeError(f"{bulkhead.running} running after every call ended")


@ADAPTIVE
def test_a_bulkhead_in_a_child_forgets_the_calls_other_threads_had_in_flight(
    adaptive: bool,
) -> None:
    """Issue 19: forked while 3 threads hold its 3 slots, a child's bulkhead has all 3 free."""
    bulkhead = bulkhead_of(3, adaptive)
    inside, release = threading.Barrier(4), threading.Event()

    def hold() -> None:
        def body() -> None:
            inside.wait(WAIT)
            release.wait(WAIT)

        bulkhead.call(body)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        inside.wait(WAIT)  # every slot is held
        assert bulkhead.running == 3

        def use() -> None:
            if bulkhead.running != 0:
                raise RuntimeError(f"{bulkhead.running} running in the child")
            take_every_slot(bulkhead, 3)

        codes = fork_children(1, use)
    finally:
        release.set()
        join_all(threads)
    assert codes == [0]
    assert bulkhead.running == 0  # the parent's own count is untouched


@ADAPTIVE
def test_a_call_forking_inside_a_bulkhead_gives_the_child_no_extra_slot(adaptive: bool) -> None:
    """Issue 19: a call that forks ends in the child too, without adding a slot there."""
    bulkhead = bulkhead_of(2, adaptive)

    @bulkhead
    def fork_inside() -> int:
        return os.fork()

    def use() -> None:  # in the child, once fork_inside returned there
        take_every_slot(bulkhead, 2)

    assert fork_children(1, use, fork=fork_inside) == [0]
    assert bulkhead.running == 0


@ADAPTIVE
def test_a_bulkhead_in_a_child_forgets_the_parents_waiters(adaptive: bool) -> None:
    """Issue 19: a child never hands a slot to a caller that waited in the parent."""
    bulkhead = rs.Bulkhead(
        max_concurrent=(rs.limits.AIMD(initial=1, maximum=1) if adaptive else 1), max_queue=1
    )
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        def body() -> None:
            inside.set()
            release.wait(WAIT)

        bulkhead.call(body)

    holder = threading.Thread(target=hold)
    waiter = threading.Thread(target=bulkhead.call, args=(int,))
    holder.start()
    try:
        assert inside.wait(WAIT)
        waiter.start()
        eventually(lambda: bulkhead.waiting == 1)  # it waits for as long as the slot is held

        def use() -> None:
            if bulkhead.waiting != 0:
                raise RuntimeError(f"{bulkhead.waiting} waiting in the child")
            for _ in range(2):  # the second time: the slot came back, and went to no one else
                with bulkhead:
                    if bulkhead.running != 1:
                        raise RuntimeError(f"{bulkhead.running} running in the child")
            if bulkhead.running != 0:
                raise RuntimeError(f"{bulkhead.running} running after every call ended")

        codes = fork_children(1, use)
    finally:
        release.set()
        join_all([holder, waiter])
    assert codes == [0]


def test_a_half_open_circuit_in_a_child_forgets_the_probe_another_thread_runs() -> None:
    """Issue 19: forked while a thread runs the only probe, a child's circuit admits its own."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(on=Boom, failure_threshold=1, reset_timeout=10.0, clock=clock)
    breaker.open()
    clock.advance(10.0)
    inside, release = threading.Event(), threading.Event()

    def probe() -> None:
        inside.set()
        release.wait(WAIT)

    prober = threading.Thread(target=breaker.call, args=(probe,))
    prober.start()
    try:
        assert inside.wait(WAIT)
        with pytest.raises(rs.CircuitOpenError):  # the only probe place is taken
            breaker.call(int)

        def use() -> None:
            breaker.call(int)  # the child's own probe: it closes the circuit
            if breaker.state is not rs.CircuitState.CLOSED:
                raise RuntimeError(breaker.state)

        codes = fork_children(1, use)
    finally:
        release.set()
        join_all([prober])
    assert codes == [0]
    assert breaker.state is rs.CircuitState.CLOSED  # the parent's probe closed it
