"""Runs a worker process: topics ensured, Faust app started, stopped on signals.

A worker that cannot do its job ends its process with a non-zero code, so a
supervisor (compose, systemd) restarts it or an operator sees why: topics with
the wrong partition count stop it before it joins the group, and a crashed Faust
app ends it within seconds (mode's worker would otherwise log "We experienced a
crash!" and live on doing nothing, its consumer thread holding the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from hubbase.broker import EmbeddedBroker
from hubbase.logs import get_logger
from hubbase.settings import MissingSecret, Settings
from hubbase.topic_admin import (
    ensure_topics,
    mismatch_message,
    partition_mismatches,
    topic_partitions,
)
from schemas.topics import HUB_TOPICS
from streams.app import Hub
from streams.exits import EXIT_CRASHED, EXIT_TOPICS, exit_now

log = get_logger(__name__)


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    """The configured broker, or an embedded one for the duration of the block."""
    if settings.broker:
        yield settings.broker
        return
    with EmbeddedBroker(partitions=settings.partitions) as broker:
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


#: glibc ``mallopt`` parameter number of M_MMAP_THRESHOLD (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Allocations from this size are their own memory maps, given back to the system when freed.
MMAP_THRESHOLD_BYTES = 128 * 1024


def tune_malloc() -> bool:
    """Keep glibc from holding on to the memory of a worker's large, short-lived buffers.

    A worker builds and sends multi-megabyte records all the time (a backfill's
    deltas are 2-4 MB, snapshots larger). glibc serves an allocation that large with
    its own memory map and returns it when freed, but each such free *raises* the
    threshold (up to 32 MB), so the next ones come from the heap and their memory
    is kept by the process after they are freed. Measured with state on disk
    (250,000 ID cards, one worker): RSS 596-680 MiB with the default, 382-418 MiB
    with the threshold fixed at 128 KiB, the Python heap the same (memray, issue 12).
    Setting it also turns the dynamic raise off. A no-op (False) off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


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


#: Seconds between checks of the app's crash flag.
CRASH_POLL_S = 0.5


def check_topics(bootstrap: str, partitions: int) -> None:
    """Create the hub's topics; stop with one line and EXIT_TOPICS if one has another count."""
    ensure_topics(bootstrap, partitions)
    mismatches = partition_mismatches(topic_partitions(bootstrap, HUB_TOPICS), partitions)
    if mismatches:
        log.error("topic_partitions_mismatch", error=mismatch_message(mismatches, partitions),
                  topics=mismatches, expected=partitions)
        sys.exit(EXIT_TOPICS)


def watch_for_crash(services: list[Any]) -> threading.Thread:
    """A daemon thread that ends the process as soon as any of ``services`` (mode) crashed."""

    def watch() -> None:
        while True:
            time.sleep(CRASH_POLL_S)
            for service in services:
                if service.crashed:
                    exit_now(EXIT_CRASHED, "worker_crashed", reason=repr(service.crash_reason))

    thread = threading.Thread(target=watch, name="lienthong-crash-watch", daemon=True)
    thread.start()
    return thread


def run_worker(settings: Settings, bootstrap: str, worker_name: str | None = None) -> None:
    check_secrets(settings)
    check_topics(bootstrap, settings.partitions)
    hub = Hub(settings, bootstrap, worker_name)
    if hub.disk is not None:
        hub.disk.warm_up()  # its own databases open while Faust starts and joins the group
    tune_gc()
    tune_malloc()
    from faust.worker import Worker

    # override_logging=False: mode would install its own text handler; ours renders JSON
    worker = Worker(hub.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
                    override_logging=False)
    worker.spinner = None  # a terminal spinner writes control characters between the JSON lines
    watch_for_crash([hub.app, worker])
    hub.web_task = asyncio.ensure_future(hub.serve_http(), loop=worker.loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        if hub.app.crashed or worker.crashed:
            exit_now(EXIT_CRASHED, "worker_crashed", reason=repr(hub.app.crash_reason or worker.crash_reason))
        raise stop
    except Exception as exc:  # noqa: BLE001 - mode re-raises the crash reason after its shutdown
        exit_now(EXIT_CRASHED, "worker_crashed", reason=repr(exc))
