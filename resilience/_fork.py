"""
Locks that a forked child gets back released.

`os.fork` copies the process with one thread, the one that forked. A lock
another thread held at that instant is copied held, and the child's first call
that takes it waits forever (an in-memory breaker under load, a metrics
series, a bulkhead). Every lock the library owns comes from `fork_safe_lock`,
which remembers it, weakly: after a fork, the child reinitialises every one
still alive, before any of its code runs. Nothing changes on the paths that
take the locks: they are plain `threading.Lock` objects.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final

__all__ = ["fork_safe_lock"]

_LOCKS: Final[weakref.WeakSet[threading.Lock]] = weakref.WeakSet()


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


def _reinitialise() -> None:
    # The child runs this alone (its only thread): no lock here is held by anyone
    # who will ever release it.
    for lock in list(_LOCKS):
        reinit = getattr(lock, "_at_fork_reinit", None)  # what CPython does for its own
        if reinit is not None:
            reinit()
        elif lock.locked():  # pragma: no cover - other Pythons
            lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinitialise)
