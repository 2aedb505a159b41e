"""The HTTP side of a core's Prometheus metrics: `/metrics` served from threads of its own,
each scrape's snapshot taken on the core's event loop and rendered off it."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sim.metrics import CoreMetrics, Selection, Snapshot, render

log = logging.getLogger("aidc.metrics")
SNAPSHOT_TIMEOUT_S = 10.0
"""How long a scrape waits for the core's loop to take its snapshot."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which `render` writes (metric names in the legacy alphabet)."""


class MetricsServer(ThreadingHTTPServer):
    """Serves `/metrics` of one core; one scrape renders at a time, so big ones queue rather
    than each holding a copy of the fleet."""

    daemon_threads = True

    def __init__(
        self, metrics: CoreMetrics, loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> None:
        """Bind to `host:port` (0 for any free port); OSError if that cannot be done."""
        self.metrics = metrics
        self.loop = loop
        self.rendering = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """Where the metrics are."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def snapshot(self, selection: Selection) -> Snapshot:
        """Take a snapshot on the event loop, between its callbacks (so between ticks and
        messages); TimeoutError if the loop does not get to it in time."""
        future: Future[Snapshot] = Future()

        def take() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.metrics.snapshot(selection))
                except Exception as error:  # handed to the scrape, which logs it
                    future.set_exception(error)

        self.loop.call_soon_threadsafe(take)
        try:
            return future.result(SNAPSHOT_TIMEOUT_S)
        finally:
            future.cancel()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scrape that failed in a way the handler did not expect: logged, not printed."""
        log.exception("a metrics scrape from %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/metrics":
            self._refuse(404, f"there is nothing at {url.path}: the metrics are at /metrics")
            return
        try:
            selection = Selection.parse(url.query)
        except ValueError as error:
            self._refuse(400, f"{error}.")
            return
        with self.server.rendering:
            try:
                snapshot = self.server.snapshot(selection)
            except (TimeoutError, RuntimeError):  # RuntimeError: the loop has closed
                self._refuse(503, "the core is not answering: it may be stopping or overloaded.")
                return
            except Exception:  # a bug: the scraper hears of it, the core carries on
                log.exception("could not take a metrics snapshot")
                self._refuse(500, "the core could not take a snapshot (see its log).")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # scraper gave up
                for chunk in render(snapshot):
                    self.wfile.write(chunk)

    def _refuse(self, status: int, sentence: str) -> None:
        body = f"{sentence}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


@contextlib.asynccontextmanager
async def serving(metrics: CoreMetrics, host: str, port: int) -> AsyncIterator[MetricsServer]:
    """Serve a core's metrics while the block runs; OSError if the address cannot be bound."""
    server = MetricsServer(metrics, asyncio.get_running_loop(), host, port)
    thread = threading.Thread(target=server.serve_forever, name="aidc-metrics", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        # shutdown waits for serve_forever, so not on the loop: a scrape may be waiting on it
        await asyncio.to_thread(server.shutdown)
        server.server_close()
