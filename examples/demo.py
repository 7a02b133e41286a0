"""
A short demo of `resilience`: a flaky HTTP service on 127.0.0.1, called with
the standard library's urllib through a Retry that honours Retry-After.

Run it with ``python examples/demo.py`` (see the README's first command).
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
import urllib.request
from typing import Any, ClassVar

import resilience as rs
from resilience.testing import capture_events


class Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503, then 429 with Retry-After: 1, then 200, round and round."""

    script: ClassVar[list[tuple[int, dict[str, str]]]] = [
        (503, {}),
        (429, {"Retry-After": "1"}),
        (200, {}),
    ]
    counter = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with Flaky.lock:
            status, headers = Flaky.script[Flaky.counter % len(Flaky.script)]
            Flaky.counter += 1
        body = b'{"ok": true}' if status == 200 else b"Service Unavailable"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  log  %(levelname)-7s %(message)s")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jobs"

    retry = rs.Retry(
        on=rs.transient,  # connection errors, timeouts, 408, 429, 5xx
        attempts=4,
        backoff=rs.backoff.exponential(initial=0.2, max=2.0, jitter=rs.backoff.proportional(0.25)),
        name="demo-api",
    )

    @retry
    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body

    print(f"resilience demo: a flaky service on {url}")
    print("  it answers 503, then 429 with Retry-After: 1, then 200\n")
    with capture_events() as events:
        started = time.monotonic()
        body = fetch()
        took = time.monotonic() - started
    print(f"\n  got {body.decode()} after {len(events) + 1} attempts in {took:.2f} s")
    print("  events:")
    for event in events:
        print(f"    {event!r}"[:150])
    server.shutdown()


if __name__ == "__main__":
    main()
