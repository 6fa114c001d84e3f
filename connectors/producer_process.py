"""A Kafka producer in a child process, so that producing costs the event loop one pipe write per micro-batch.

kafka-python's `KafkaProducer.send` does its record building, partitioning and buffering in Python, on the caller's
thread, for every message. In a child process that work runs on another core, and the loop only pickles the encoded
messages of a batch into a pipe.

`flush` waits until the child has delivered everything sent before it (so offsets are committed only after the
predictions of the records before them are on the broker) and reports the messages that failed since, by topic: a
failed delivery is logged by the child and counted, never raised.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import typing
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

Message = tuple[bytes | None, bytes]  # (key, value)


class ProducerGone(RuntimeError):
    """The child process that produces is no longer there."""


def _produce(inbox: Connection, outbox: Connection) -> None:
    """The child: a KafkaProducer fed by `inbox` until it closes or says "close"; answers on `outbox`."""
    from kafka import KafkaProducer

    bootstrap_servers, options = inbox.recv()
    failed: dict[str, int] = {}
    since_flush: dict[str, tuple[int, BaseException]] = {}  # failures since the last flush, and the last error

    def lost(topic: str):
        def errback(err) -> None:
            failed[topic] = failed.get(topic, 0) + 1
            since_flush[topic] = (since_flush.get(topic, (0, err))[0] + 1, err)
        return errback

    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **options)
    except Exception as err:
        outbox.send(("error", f"{type(err).__name__}: {err}"))
        return
    outbox.send(("ready", None))
    try:
        while True:
            command, *args = inbox.recv()
            if command == "send":
                topic, messages = args
                on_error = lost(topic)
                for key, value in messages:
                    try:
                        producer.send(topic, value=value, key=key).add_errback(on_error)
                    except Exception as err:  # refused at once, e.g. larger than max_request_size
                        on_error(err)
            elif command == "flush":
                producer.flush()
                for topic, (count, err) in list(since_flush.items()):  # a line per topic, however many failed
                    log.error("%d messages to %s not delivered since the last flush; the last: %r", count, topic, err)
                since_flush.clear()
                outbox.send(("flushed", dict(failed)))
            else:
                break
    except (EOFError, BrokenPipeError):  # the parent went away
        pass
    finally:
        producer.close()


class ProducerProcess:
    """Sends batches of messages through a producer in a child process; `failed` counts, by topic, the messages the
    child could not deliver, as of the last `flush`.

    `options` are KafkaProducer options (linger_ms, acks, security settings, ...).
    """

    def __init__(self, bootstrap_servers: str, options: dict | None = None):
        # A fresh interpreter that imports only kafka-python (not a fork of this process's torch and numba state, nor
        # a re-import of its main module), talking over two pipes; it exits when the pipe to it closes.
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "connectors.producer_process", str(from_parent), str(to_parent)],
            pass_fds=(from_parent, to_parent), env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        os.close(from_parent)
        os.close(to_parent)
        self._send_conn = Connection(to_child, readable=False)
        self._recv_conn = Connection(from_child, writable=False)
        self.failed: dict[str, int] = {}
        self._write((bootstrap_servers, options or {}))
        status, detail = self._read()
        if status != "ready":
            self.close()
            raise ConnectionError(f"the Kafka producer could not start: {detail}")

    def _gone(self) -> ProducerGone:
        return ProducerGone(f"the producer process exited (status {self._process.poll()})")

    def _write(self, message) -> None:
        try:
            self._send_conn.send(message)
        except OSError:
            raise self._gone() from None

    def _read(self) -> tuple[str, typing.Any]:
        try:
            return self._recv_conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None

    def send(self, topic: str, messages: list[Message]) -> None:
        if messages:
            self._write(("send", topic, messages))

    def flush(self) -> None:
        """Wait until every message sent so far is delivered or failed."""
        self._write(("flush",))
        _, self.failed = self._read()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.flush()
                self._write(("close",))
            except ProducerGone:
                pass
        self._send_conn.close()
        self._recv_conn.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _produce(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))