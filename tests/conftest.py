from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hubbase.broker import EmbeddedBroker
from tests.registry_stand_in import stand_in  # noqa: F401  (a fixture for every test)
from tests.support import WorkerProcess, shared_secrets_env

PARTITIONS = 8

# Every test process and every child it starts signs and verifies with the test keys.
for _name, _value in shared_secrets_env().items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def broker() -> Iterator[str]:
    """A fresh embedded broker (Tansu, memory storage) with the hub's topics."""
    with EmbeddedBroker(partitions=PARTITIONS) as embedded:
        yield embedded.bootstrap


@pytest.fixture
def workers(broker: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real worker processes on the test broker; all stopped after the test."""
    started: list[WorkerProcess] = []

    def start(name: str | None = None, store: str = "memory://", wait: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(broker, tmp_path, name, store)
        worker.env.update(env)
        started.append(worker)
        return worker.start(wait)

    yield start
    for worker in started:
        worker.kill()
