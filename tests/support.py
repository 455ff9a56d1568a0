"""Helpers for tests that run the real thing: broker, worker processes, HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubbase.broker import free_port, stop_process
from schemas.vocabulary import AGENCIES

ROOT = Path(__file__).resolve().parent.parent
#: Every agency's signing key in tests (two for POLICE: a rotation in progress).
TEST_SIGNING_KEYS = {
    **{f"{a.lower()}-test-1": {"agency": a, "secret": f"{a.lower()}-test-secret-0123456789abcdef0123"} for a in AGENCIES},
    "police-test-2": {"agency": "POLICE", "secret": "police-test-secret-2-0123456789abcdef01"},
}
TEST_PSEUDONYM_KEY = "test-key-0123456789abcdef"


def shared_secrets_env() -> dict[str, str]:
    """The secrets every test process shares (tests, like the demo, may use known keys)."""
    return {
        "LIENTHONG_SIGNING_KEYS": json.dumps(TEST_SIGNING_KEYS),
        "LIENTHONG_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
    }


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the thing may not be up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def hub_env(bootstrap: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LIENTHONG_BROKER=bootstrap,
        LIENTHONG_DATA_DIR=str(data_dir),
        LIENTHONG_REBALANCE_TIMEOUT="2",
        LIENTHONG_SNAPSHOT_INTERVAL="0.5",
        LIENTHONG_PSEUDONYM_KEY=TEST_PSEUDONYM_KEY,
        LIENTHONG_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """A real ``lienthong worker`` child process with its own web port."""

    def __init__(self, bootstrap: str, data_dir: Path, name: str | None = None, store: str = "memory://") -> None:
        self.name = name or f"w-{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{self.name}.log"
        self.env = hub_env(bootstrap, data_dir, LIENTHONG_WEB_PORT=str(self.port), LIENTHONG_STORE=store)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lienthong", "worker", "--name", self.name],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            return bool(get_json(f"{self.url}/healthz")["partitions_owned"])

        wait_for(ready, timeout, what=f"worker {self.name} to own partitions")

    def get(self, path: str) -> Any:
        return get_json(f"{self.url}{path}")

    def flags(self, query: str = "") -> list[dict[str, Any]]:
        """Every flag matching ``query``, following ``next_cursor`` over all pages."""
        rows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            body = self.get(f"/api/flags?limit=1000&{query}{cursor}")
            rows += body["flags"]
            if body["next_cursor"] is None:
                return rows
            cursor = f"&cursor={body['next_cursor']}"

    def kpis(self, query: str = "") -> dict[str, Any]:
        return dict(self.get(f"/api/kpis{query}")["kpis"])

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 30)


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
