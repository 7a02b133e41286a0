"""
Reading the streaming endpoints: server-sent events, as the server really sends them.

The server answers HTTP 200 with ``text/event-stream``; ``create-and-call-stream``
first sends a ``: keepalive`` comment; each event is ``data: <provider JSON>``;
OpenAI-style streams end with ``data: [DONE]``, others simply end; a failure
after the 200 arrives as one ``data: {"error": "..."}`` event, then the end.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

from ...engine import cancel_after
from ._classify import is_permanent, transport_kind
from ._endpoints import ENDPOINTS, EndpointMap
from ._errors import StreamError, redact, request_line

__all__ = ["aiter_sse", "delta_text", "iter_sse"]

# "500: ..." at the start, or after a prefix: "LLM call failed: 500: ...".
_STATUS: Final = re.compile(r"(?:^|:\s)\s*([1-5]\d\d)\s*:")
_STREAM_BUG: Final = "does not support the asynchronous context manager protocol"
_BOM: Final = b"\xef\xbb\xbf"
_END: Final = object()  # what `_Stream.payload` returns for ``data: [DONE]``


def delta_text(payload: object) -> str:
    """
    Return the text an event payload adds: ``choices[0].delta.content``, or ``""``.

    Payloads of other shapes (other providers' chunks, the keepalive, strings)
    add nothing; this never raises.
    """
    if not isinstance(payload, dict):
        return ""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    return content if isinstance(content, str) else ""


class _Decoder:
    """Incremental SSE decoding: bytes in, ``data`` fields of complete events out."""

    __slots__ = ("buffer", "data", "started", "truncated")

    def __init__(self) -> None:
        self.buffer = b""
        self.data: list[str] = []
        self.started = False  # past a possible byte order mark
        self.truncated = False  # the stream ended inside an event that is not whole

    def feed(self, chunk: bytes) -> list[str]:
        self.buffer += chunk
        if not self.started:
            if len(self.buffer) < len(_BOM) and _BOM.startswith(self.buffer):
                return []  # too short to tell
            self.started = True
            if self.buffer.startswith(_BOM):  # as the SSE standard says: ignored
                self.buffer = self.buffer[len(_BOM) :]
        events: list[str] = []
        while True:
            cut = _line_end(self.buffer)
            if cut is None:
                return events
            end, after = cut
            line = self.buffer[:end].decode("utf-8", "replace")
            self.buffer = self.buffer[after:]
            self._line(line, events)

    def finish(self) -> list[str]:
        """Events left when the stream ends; sets `truncated` for a cut-off last event."""
        events: list[str] = []
        if self.buffer.endswith(b"\r"):  # a CR held back to see whether LF follows: none will
            events += self.feed(b"\n")
        if self.buffer:
            self._line(self.buffer.decode("utf-8", "replace"), events)
            self.buffer = b""
        if self.data:
            # No blank line after the last event: keep it if it is whole (some
            # servers omit the last one), not a fragment of one cut off mid-way.
            data = "\n".join(self.data)
            if data.strip() != "[DONE]" and not _is_json(data):
                self.truncated = True
                self.data = []
                return events
        self._line("", events)
        return events

    def _line(self, line: str, events: list[str]) -> None:
        if not line:
            if self.data:
                events.append("\n".join(self.data))
                self.data = []
            return
        if line.startswith(":"):
            return  # a comment: ": keepalive"
        name, _, value = line.partition(":")
        if name == "data":
            self.data.append(value[1:] if value.startswith(" ") else value)
        # "event", "id" and "retry" fields carry nothing the profile uses.


def _is_json(data: str) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Return (end of line, start of next) for the first complete line, or `None`."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, lf + 1
    if cr + 1 < len(buffer):
        return cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
    return None  # a lone CR at the end: wait to see whether LF follows


class _Stream:
    """The state shared by the sync and async readers: payloads so far, text, errors."""

    __slots__ = ("done", "method", "partial", "path", "text")

    def __init__(self, response: object) -> None:
        self.method, self.path = request_line(response)
        self.partial: list[Any] = []
        self.text = ""
        self.done = False

    def payload(self, data: str) -> Any:
        """Return one event's payload (`_END` for ``[DONE]``); raise on an in-band error."""
        if data.strip() == "[DONE]":
            self.done = True
            return _END
        try:
            payload: Any = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
            payload = data
        if isinstance(payload, dict) and "error" in payload and "choices" not in payload:
            text, status = _error_text(payload["error"])
            raise self.error(text, in_band=True, status=status)
        self.partial.append(payload)
        self.text += delta_text(payload)
        return payload

    def error(
        self, detail: str, *, in_band: bool = False, status: int | None = None
    ) -> StreamError:
        """
        The `StreamError` for a failure; an in-band error event is the server's failure.

        An in-band event's status is the one it names (``"500: ..."``, ``"LLM
        call failed: 500: ..."``, ``{"code": 500}``), else 500: the server's
        stream caught an error it would have answered 500 for, after its 200.
        """
        detail = redact(detail)
        if in_band and status is None:
            match = _STATUS.search(detail)
            status = int(match.group(1)) if match else 500
        where = f" ({self.method} {self.path})" if self.method and self.path else ""
        what = "the server reported an error mid-stream" if in_band else "the stream failed"
        if in_band and _STREAM_BUG in detail:
            what = (
                "the server's stream endpoint is broken (a server bug: every call ends this "
                "way, and no retry helps; use the non-streaming endpoint)"
            )
        elif in_band and is_permanent(detail):
            what += " (a permanent cause: no retry helps)"
        count = len(self.partial)
        return StreamError(
            f"{what} after {count} event{'s' if count != 1 else ''}: {detail}{where}",
            partial=self.partial,
            text=self.text,
            status=status,
            detail=detail,
            method=self.method,
            path=self.path,
        )

    def failed(self, exc: BaseException) -> StreamError:
        found = transport_kind(exc)
        if found is not None and found[0] == "timeout":
            return self.error(f"no event arrived in time ({type(exc).__name__})")
        if found is not None:
            return self.error(f"the connection dropped ({type(exc).__name__})")
        return self.error(f"{type(exc).__name__}: {exc}")


def _error_text(error: object) -> tuple[str, int | None]:
    """An in-band error's text, and the status it carries as a field (``code``, ``status``)."""
    if isinstance(error, dict):
        status = None
        for name in ("status", "code", "status_code"):
            value = error.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                status = value
                break
        message = error.get("message")
        if isinstance(message, str):
            return message, status
        return json.dumps(error, separators=(",", ":"), default=str), status
    return str(error), None


def _limits(
    response: object, idle: float | None, total: float | None, endpoints: EndpointMap
) -> tuple[float | None, float | None]:
    if idle is not None and total is not None:
        return idle, total
    method, path = request_line(response)
    default: float | None = None
    if method and path:
        try:
            found = endpoints.match(method, path)
        except ValueError:
            found = None
        if found is not None and found.stream:
            default = found.timeout
    return (default if idle is None else idle), (default if total is None else total)


def _sync_chunks(response: Any) -> Iterator[bytes]:
    if getattr(response, "_content_consumed", False):
        # requests without stream=True: the body was read already (one chunk).
        yield response.content
        return
    raw = getattr(response, "raw", None)
    if raw is not None and hasattr(response, "iter_content"):  # requests
        read1 = getattr(raw, "read1", None)
        if read1 is not None and not getattr(raw, "chunked", False):
            # Not chunked: read what has arrived, not a fixed size, so events are not held back.
            while True:
                chunk = read1(65536, decode_content=True)
                if not chunk:
                    return
                yield chunk
        yield from response.iter_content(chunk_size=None)
        return
    yield from response.iter_bytes()  # httpx


def iter_sse(
    response: Any,
    *,
    idle: float | None = None,
    total: float | None = None,
    endpoints: EndpointMap = ENDPOINTS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Any]:
    """
    Yield the JSON payload of each event of a streaming requests or httpx response.

    Accepts ``: keepalive`` comments (skipped), stops at ``data: [DONE]``, and
    accepts a stream that ends without it (other providers never send it).
    Data that is not JSON is yielded as a string. The response is closed when
    the iteration ends, however it ends.

    Send the request with ``stream=True`` (requests) or ``client.stream(...)`` /
    ``send(..., stream=True)`` (httpx); a requests response read without it is
    decoded from its body. A stream that ends in the middle of an event raises
    `StreamError`; a leading byte order mark is ignored. Timeouts: a sync read
    cannot be interrupted, so *idle* and *total* are checked as each chunk
    arrives (the chunk is delivered first); a silent stall is ended by the
    socket's read timeout, which the profile's clients set to the endpoint's
    timeout.

    Args:
        response: A streaming `requests.Response` or `httpx.Response` (sync).
        idle: Seconds allowed between chunks. Default: the endpoint's timeout
            for a streaming endpoint (120 s), else none.
        total: Seconds allowed for the whole stream. Default: likewise.
        endpoints: The map the defaults come from. Default: `ENDPOINTS`.
        clock: Monotonic seconds, for the total limit. Default: `time.monotonic`.

    Yields:
        Each event's payload: a dict for JSON objects.

    Raises:
        StreamError: On an in-band ``{"error": ...}`` event, a dropped
            connection, or a timeout, with ``.partial`` (the payloads so far)
            and ``.text`` (their ``choices[0].delta.content``, joined).
    """
    idle, total = _limits(response, idle, total, endpoints)
    state = _Stream(response)
    decoder = _Decoder()
    started = clock()
    chunks = _sync_chunks(response)
    try:
        while not state.done:
            waited_from = clock()
            try:
                chunk = next(chunks, None)
            except Exception as exc:
                raise state.failed(exc) from exc
            gap = clock() - waited_from
            events = decoder.feed(chunk) if chunk is not None else decoder.finish()
            for data in events:
                payload = state.payload(data)
                if payload is _END:
                    break
                yield payload
            if chunk is None:
                if decoder.truncated:
                    raise state.error("the stream ended in the middle of an event")
                break
            # A sync read cannot be interrupted: the limits are checked as data
            # arrives (what arrived late was delivered first).
            finished = state.done  # [DONE] came: nothing more is waited for
            if idle is not None and gap > idle and not finished:
                raise state.error(f"no event arrived within {idle:.6g} s (waited {gap:.3g} s)")
            if total is not None and clock() - started > total and not finished:
                raise state.error(f"the stream exceeded its total timeout of {total:.6g} s")
    finally:
        response.close()


async def aiter_sse(
    response: Any,
    *,
    idle: float | None = None,
    total: float | None = None,
    endpoints: EndpointMap = ENDPOINTS,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Any]:
    """
    Yield the JSON payload of each event of a streaming `httpx.Response` (async).

    The same as `iter_sse`, for ``async with client.stream(...)`` or
    ``await client.send(..., stream=True)``; here both limits are exact: each
    read is cancelled after the lower of *idle* and the time left of *total*.

    Args:
        response: A streaming `httpx.Response` of an `httpx.AsyncClient`.
        idle: Seconds allowed between chunks. Default: the endpoint's timeout
            for a streaming endpoint (120 s), else none.
        total: Seconds allowed for the whole stream. Default: likewise.
        endpoints: The map the defaults come from. Default: `ENDPOINTS`.
        clock: Monotonic seconds, for the total limit. Default: `time.monotonic`.

    Yields:
        Each event's payload.

    Raises:
        StreamError: As for `iter_sse`.
    """
    idle, total = _limits(response, idle, total, endpoints)
    state = _Stream(response)
    decoder = _Decoder()
    started = clock()
    chunks = response.aiter_bytes().__aiter__()
    try:
        while not state.done:
            wait = idle
            if total is not None:
                left = total - (clock() - started)
                if left <= 0:
                    raise state.error(f"the stream exceeded its total timeout of {total:.6g} s")
                wait = left if wait is None else min(wait, left)
            try:
                async with cancel_after(wait):  # a cancel scope under trio
                    chunk: bytes | None = await anext(chunks, None)
            except TimeoutError as exc:
                if total is not None and clock() - started >= total:
                    raise state.error(
                        f"the stream exceeded its total timeout of {total:.6g} s"
                    ) from exc
                raise state.error(f"no event arrived within {wait:.6g} s") from exc
            except Exception as exc:
                raise state.failed(exc) from exc
            events = decoder.feed(chunk) if chunk is not None else decoder.finish()
            for data in events:
                payload = state.payload(data)
                if payload is _END:
                    break
                yield payload
            if chunk is None:
                if decoder.truncated:
                    raise state.error("the stream ended in the middle of an event")
                break
    finally:
        # Close the byte iterator before the response: left suspended, an async
        # generator is finalised by the garbage collector, outside any loop
        # (Python 3.13 reports that as an unraisable exception).
        aclose = getattr(chunks, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            await response.aclose()
