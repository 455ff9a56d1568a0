"""Runs a worker process: topics ensured, Faust app started, stopped on signals."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from lienthong.broker import EmbeddedBroker
from lienthong.logs import get_logger
from lienthong.settings import MissingSecret, Settings
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


#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect cycles less often in a process whose state is large and acyclic.

    A worker's partition state is millions of small dicts and lists that
    reference counting frees on its own; with CPython's defaults the cycle
    collector keeps re-scanning them as the state grows (about 7% of the
    processor on the 200k benchmark). Objects alive after start-up (modules,
    Faust's services) are frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def check_secrets(settings: Settings) -> None:
    """Refuse to start without the pseudonym key, or without signing keys while verification is on."""
    settings.require_pseudonym_key("the worker")
    if settings.verify_signatures and not settings.keyring():
        raise MissingSecret(
            "the worker verifies every message's signature, but no signing keys are configured: set "
            "LIENTHONG_SIGNING_KEYS (a keys file or inline JSON), or LIENTHONG_VERIFY_SIGNATURES=false to count unsigned messages"
        )
    if not settings.verify_signatures:
        log.warning("signature_verification_off", detail="LIENTHONG_VERIFY_SIGNATURES=false: unsigned messages are counted")


def run_worker(settings: Settings, bootstrap: str, worker_name: str | None = None) -> None:
    check_secrets(settings)
    ensure_topics(bootstrap, settings.partitions)
    hub = Hub(settings, bootstrap, worker_name)
    tune_gc()
    from faust.worker import Worker

    worker = Worker(hub.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
