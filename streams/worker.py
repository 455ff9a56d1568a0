"""Runs a worker process: topics ensured, Faust app started, stopped on signals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lienthong.broker import EmbeddedBroker
from lienthong.logs import get_logger
from lienthong.settings import Settings
from lienthong.topics import ensure_topics
from streams.app import Hub

log = get_logger(__name__)


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    """The configured broker, or an embedded one for the duration of the block."""
    if settings.broker:
        yield settings.broker
        return
    with EmbeddedBroker() as broker:
        log.info("embedded_broker_started", bootstrap=broker.bootstrap)
        yield broker.bootstrap


def run_worker(settings: Settings, bootstrap: str, worker_name: str | None = None) -> None:
    ensure_topics(bootstrap, settings.partitions)
    hub = Hub(settings, bootstrap, worker_name)
    from faust.worker import Worker

    worker = Worker(hub.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
