"""Real ``redis-server`` and ``nats-server`` processes for tests, on free loopback ports.

Each server runs in a temporary directory of its own, is stopped by the test that
started it, and can be killed and started again on the same port (outage tests)::

    with RedisServer() as bus:       # skips the test when redis-server is missing
        url = bus.url                # redis://127.0.0.1:<port>/0
        bus.kill()                   # SIGKILL: an outage
        bus.start()                  # back on the same port
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until something accepts connections on ``port`` (or the process died)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port}:\n{log.read_text()}")
        time.sleep(0.01)  # the poll interval of a condition with a deadline


class ServerProcess:
    """A server binary run on a free port in a temp dir; a context manager."""

    binary = ""
    scheme = ""

    def __init__(self) -> None:
        path = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if path is None:
            pytest.skip(f"{self.binary} is not installed (scripts/test installs it)")
        self.path = path
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"fullduplex-{self.binary}-")
        self.dir = Path(self._tmp.name)
        self.log = self.dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def start(self) -> None:
        assert self.process is None, "already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process, self.log)

    def kill(self) -> None:
        """SIGKILL the server (an outage) and reap it."""
        self._stop(signal.SIGKILL)

    def stop(self) -> None:
        self._stop(signal.SIGTERM)

    def _stop(self, sig: int) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            self._tmp.cleanup()


class RedisServer(ServerProcess):
    """``redis-server`` without persistence, on 127.0.0.1 only."""

    binary = "redis-server"
    scheme = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.path,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip


class NatsServer(ServerProcess):
    """``nats-server`` with JetStream stored in the temp dir, on 127.0.0.1 only."""

    binary = "nats-server"
    scheme = "nats"

    def __init__(self, jetstream: bool = True) -> None:
        super().__init__()
        self.jetstream = jetstream

    def command(self) -> list[str]:
        command = [self.path, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            command += ["-js", "-sd", str(self.dir / "jetstream")]
        return command


def python_clients() -> None:
    """Skip unless both client libraries are importable."""
    pytest.importorskip("redis", reason="redis-py is not installed (the [redis] extra)")
    pytest.importorskip("nats", reason="nats-py is not installed (the [nats] extra)")
