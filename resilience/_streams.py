"""
Stream forwarding, written once for every policy that stands around a stream.

A policy around a (async) generator function is itself a generator that sits
between the consumer and the inner stream. Whatever the consumer does must
reach the inner stream unchanged: ``next()`` / ``__anext__()``, a value sent
with ``send()`` / ``asend()``, an exception thrown in with ``throw()`` /
``athrow()``, and ``close()`` / ``aclose()`` (also what an early ``break``
does). The policy receives the consumer's request at its own ``yield`` and
passes it on with `step` or `astep`; `relay` does the whole delegation for a
sync stream whose first item was already taken.

Every driver receives the consumer's request the same way::

    sent = thrown = None
    try:
        sent = yield item
    except GeneratorExit:  # close(): the caller's finally closes the inner stream
        raise
    except BaseException as exc:  # throw(): forward it
        thrown = exc
    item = step(it, sent, thrown)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Generator
from typing import Any

__all__ = ["astep", "relay", "step"]


def step(it: Generator[Any, Any, Any], sent: object, thrown: BaseException | None, /) -> Any:
    """
    Pass the consumer's request on to the sync stream *it* and return its next item.

    *thrown* (an exception the consumer threw in) is thrown into *it*; else
    *sent* is sent, or the next item requested when it is `None`. What *it*
    raises (`StopIteration` at its end included) propagates.
    """
    if thrown is not None:
        return it.throw(thrown)
    if sent is None:
        return next(it)
    return it.send(sent)


def astep(
    it: AsyncGenerator[Any, Any], sent: object, thrown: BaseException | None, /
) -> Awaitable[Any]:
    """
    Pass the consumer's request on to the async stream *it*; await the result for its next item.

    As `step`: ``athrow(thrown)``, ``asend(sent)`` or ``__anext__()``. The
    awaitable raises `StopAsyncIteration` at the stream's end.
    """
    if thrown is not None:
        return it.athrow(thrown)
    if sent is None:
        return it.__anext__()
    return it.asend(sent)


def relay(it: Generator[Any, Any, Any], item: object, /) -> Generator[Any, Any, Any]:
    """
    Yield *item*, then the rest of *it*, forwarding ``send()``, ``throw()`` and ``close()``.

    For a driver that took the first item itself (to time it, or to restart
    the stream before it): ``return (yield from relay(it, first))``. Returns
    *it*'s return value. Closing the relay closes *it*.
    """
    while True:
        sent: Any = None
        thrown: BaseException | None = None
        try:
            sent = yield item
        except GeneratorExit:
            it.close()
            raise
        except BaseException as exc:
            thrown = exc
        try:
            item = step(it, sent, thrown)
        except StopIteration as stop:
            return stop.value
