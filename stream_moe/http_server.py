"""`/metrics` (Prometheus text format), `/healthz` (the loop is alive) and `/readyz` (it owns its input and serves),
on a background thread; bound to 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import http.server
import threading
import typing

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class PortUnavailable(RuntimeError):
    """The ops endpoints' address cannot be bound (a port in use, an address of another machine)."""


class OpsServer:
    """Serves the three endpoints; `healthy()` and `ready()` are asked on every request."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        healthy: typing.Callable[[], bool],
        ready: typing.Callable[[], bool],
    ):
        checks = {"/healthz": healthy, "/readyz": ready}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in checks:
                    ok = checks[path]()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes every few seconds would flood the logs
                pass

        try:
            self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as err:  # the port is taken, or the address is not this machine's
            raise PortUnavailable(f"cannot serve metrics and health on {host}:{port}: {err.strerror or err} "
                                  "(serve.http_host, serve.http_port or --http-port; port 0 takes any free one)"
                                  ) from None
        self.server.daemon_threads = True
        self.address = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="ops-http", daemon=True)

    def start(self) -> "OpsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
