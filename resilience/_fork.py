"""
Locks that a forked child gets back released, and calls in flight that it forgets.

`os.fork` copies the process with one thread, the one that forked. A lock
another thread held at that instant is copied held, and the child's first call
that takes it waits forever (an in-memory breaker under load, a metrics
series, a bulkhead). Every lock the library owns comes from `fork_safe_lock`,
which remembers it, weakly: after a fork, the child reinitialises every one
still alive, before any of its code runs. Nothing changes on the paths that
take the locks: they are plain `threading.Lock` objects.

State that counts the calls in flight (a bulkhead's slots, a half-open
circuit's probes) has the same problem: the child inherits the calls that the
parent's other threads were running, which never end there. Such an object
registers with `forget_in_child` (weakly too); the child calls its
``forget_calls_in_flight()`` once the locks are released.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final, Protocol

__all__ = ["forget_in_child", "fork_safe_lock"]

_LOCKS: Final[weakref.WeakSet[threading.Lock]] = weakref.WeakSet()


class InFlight(Protocol):
    """What counts calls in flight: it can forget them all, in a forked child."""

    def forget_calls_in_flight(self) -> None:
        """Count no call as running or waiting (called in the child, alone, after a fork)."""
        ...


_IN_FLIGHT: Final[weakref.WeakSet[InFlight]] = weakref.WeakSet()


def fork_safe_lock() -> threading.Lock:
    """
    Return a new `threading.Lock` that is released again in a child process after `os.fork`.

    Use it for every lock a policy or store keeps: a lock held by another
    thread when the process forks would otherwise stay held in the child
    forever. In the parent it is an ordinary lock, at no extra cost per use.

    Returns:
        A `threading.Lock`, registered (weakly) for reinitialisation after a fork.
    """
    lock = threading.Lock()
    _LOCKS.add(lock)
    return lock


def forget_in_child(counter: InFlight) -> None:
    """
    Have a forked child call ``counter.forget_calls_in_flight()`` before any of its code runs.

    For state that counts the calls in flight: the calls the parent ran at the
    fork (its other threads', and the forking thread's own) never end in the
    child, or end there without counting. *counter* is remembered weakly,
    and must take weak references and be hashable by identity.

    Args:
        counter: The object whose ``forget_calls_in_flight()`` the child calls.
    """
    _IN_FLIGHT.add(counter)


def _reinitialise() -> None:
    # The child runs this alone (its only thread): no lock here is held by anyone
    # who will ever release it, and no call in flight at the fork is this
    # process's to finish but the forking thread's (see `forget_in_child`).
    for lock in list(_LOCKS):
        reinit = getattr(lock, "_at_fork_reinit", None)  # what CPython does for its own
        if reinit is not None:
            reinit()
        elif lock.locked():  # pragma: no cover - other Pythons
            lock.release()
    for counter in list(_IN_FLIGHT):
        counter.forget_calls_in_flight()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinitialise)
