"""Soak: a long backfill of ID cards of distinct citizens through one worker, with SIGKILLs.

``lienthong bench --soak [--events N]`` (default 2,000,000): the backlog is
published in steps of 250,000 events, each waited for until the worker has
counted it; after each step it prints the worker's RSS (now and peak). At the
first step and at the end the worker is SIGKILLed and restarted, once on its
own data dir (its local store intact) and, at the end, also on a fresh one (the
store lost), timed from the restart until its counts are exact again. Last it
prints the largest record on the changelog, aggregates and alerts topics and
the worker's events/s beside a bare aiokafka client reading the same backlog
(one run, so the ratio is fair on a shared machine). Not a timed test: figures
for docs/performance.md (issue 12).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.onboarding import DAY_MS, JULY_MS, id_card, largest_records, use_bench_keys
from bench.throughput import BACKFILL_LINGER_S, PARTITIONS, BenchWorker, bare_consume
from connectors.sdk import Publisher
from hubbase.broker import EmbeddedBroker
from hubbase.topic_admin import ensure_topics
from schemas.topics import AGGREGATES, ALERTS
from schemas.wards import ward_codes

STEP = 250_000
APP_ID = "soak"
WORKER = "soak-worker"


def cards(first: int, count: int, total: int, citizens: int = 0) -> Iterator[dict[str, Any]]:
    """ID cards spread over a year of event time in order: of distinct citizens, or (``citizens``)
    cards issued again and again to that many citizens (every event its own id)."""
    wards = sorted(ward_codes())
    spacing = max(1, (365 * DAY_MS) // max(1, total))
    for n in range(first, first + count):
        citizen = n % citizens if citizens else n
        card = id_card(JULY_MS + n * spacing, citizen, wards[citizen % len(wards)])
        card["event_id"] = str(uuid.UUID(int=n + 1))
        yield card


def publish(bootstrap: str, events: Iterator[dict[str, Any]]) -> None:
    publisher = Publisher(bootstrap, connector="soak", batch_size=500, linger=BACKFILL_LINGER_S)
    try:
        for event in events:
            publisher.publish(event)
        publisher.flush()
    finally:
        publisher.close()


def rss_mib(worker: BenchWorker) -> tuple[float, float]:
    """(current, peak) resident set of the worker process, MiB."""
    assert worker.process is not None
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def restarted_rss(worker: BenchWorker) -> str:
    """The restarted worker's RSS once counted again (now, and its peak: a restore's own high-water mark)."""
    now, peak = rss_mib(worker)
    return f"   RSS {now:.1f} MiB, peak {peak:.1f} MiB"


def rocksdb_mib(worker: BenchWorker) -> dict[str, float]:
    """RocksDB's memory in the worker by part (``lienthong_state_store_memory_bytes``), MiB."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {sample.labels["part"]: sample.value / 2**20
            for family in text_string_to_metric_families(text) if family.name == "lienthong_state_store_memory_bytes"
            for sample in family.samples}


def restore_sources(worker: BenchWorker) -> str:
    """How the worker's partitions were opened (``lienthong_partitions_restored``) and the deltas it folded."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {(family.name, sample.labels.get("source", "")): sample.value
              for family in text_string_to_metric_families(text) for sample in family.samples}
    sources = ", ".join(f"{int(values[('lienthong_partitions_restored', source)])} from {source}"
                        for source in ("local store", "checkpoint", "changelog")
                        if values.get(("lienthong_partitions_restored", source)))
    steps = ", ".join(f"{sample.labels['step']} {sample.value:.1f} s"
                      for family in text_string_to_metric_families(text) if family.name == "lienthong_restore_seconds"
                      for sample in family.samples if sample.value)
    folded = int(values.get(("lienthong_changelog_deltas_folded", ""), 0))
    return f"   ({sources}; {folded:,} deltas folded{'; ' + steps if steps else ''})"


def counted(worker: BenchWorker) -> int | None:
    """Events the worker has counted, or None while it does not answer (starting, or busy folding)."""
    worker.check_alive()
    try:
        return int(worker.get("/api/kpis")["kpis"]["events_total"])
    except OSError:
        return None


def wait_counted(worker: BenchWorker, expected: int, timeout: float = 3600.0, interval: float = 1.0) -> float:
    """Seconds until the worker has counted at least ``expected`` events.

    A KPI poll sums every counter of the city (O(state)), so it is not cheap for
    a worker holding hundreds of thousands of citizens: poll sparingly.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        n = counted(worker)
        if n is not None and n >= expected:
            return time.monotonic() - started
        time.sleep(interval)
    raise RuntimeError(f"worker did not count {expected} events in {timeout} s")


def soak_worker(bootstrap: str, data_dir: Path) -> BenchWorker:
    """The soak's worker, as a production worker on Kafka runs: one stable name, static membership."""
    worker = BenchWorker(bootstrap, data_dir, APP_ID, WORKER)
    worker.env["LIENTHONG_STATIC_MEMBERSHIP"] = "true"
    return worker


def restart(worker: BenchWorker, data_dir: Path, bootstrap: str, lose_store: bool = False
            ) -> tuple[BenchWorker, int, float]:
    """SIGKILL the worker and start it again (same name: same local store dir, same group member).

    ``lose_store``: its local store is removed first (a new machine): it restores
    from the changelog and the partials topic. Returns the new worker, the count
    at the kill, and the seconds until it has counted that much again (its state
    restored: exact again).
    """
    at_kill = counted(worker) or 0
    assert worker.process is not None
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(30)
    if lose_store:
        shutil.rmtree(data_dir / "state" / WORKER, ignore_errors=True)
    fresh = soak_worker(bootstrap, data_dir)
    fresh.start()
    return fresh, at_kill, wait_counted(fresh, at_kill)


def main(events: int = 2_000_000, citizens: int = 0, say: Callable[..., None] = print) -> dict[str, Any]:
    """The soak run; prints as it goes and returns the figures.

    ``citizens``: the cards go to that many citizens again and again (state bounded by
    them, history growing), where a restore from a checkpoint beats a fold of every delta.
    """
    figures: dict[str, Any] = {"events": events, "citizens": citizens, "steps": [], "restarts": []}
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-soak-"))
    use_bench_keys()
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            whose = f"{citizens:,} citizens again and again" if citizens else "distinct citizens"
            say(f"publishing {events:,} ID cards of {whose} (batches of 500)...", flush=True)
            started = time.monotonic()
            publish(broker.bootstrap, cards(0, events, events, citizens))
            say(f"  published in {time.monotonic() - started:.1f} s", flush=True)
            worker = soak_worker(broker.bootstrap, data_dir)
            worker.start()
            counting = time.monotonic()
            try:
                for mark in range(STEP, events + STEP, STEP):
                    mark = min(mark, events)
                    wait_counted(worker, mark, interval=5.0)
                    now, peak = rss_mib(worker)
                    figures["steps"].append((mark, now, peak))
                    rocks = ", ".join(f"{part} {mib:.0f}" for part, mib in rocksdb_mib(worker).items())
                    say(f"{mark:>10,} events counted   RSS {now:7.1f} MiB   peak {peak:7.1f} MiB"
                        f"   (RocksDB MiB: {rocks or 'memory state'})   at {time.monotonic() - counting:6.0f} s",
                        flush=True)
                    if mark == STEP and events > STEP:
                        # the first incarnation read a complete backlog from the start: its own clock's rate
                        first, last, _ = worker.busy_span()
                        span_events = counted(worker) or 0
                        figures["worker_eps"] = span_events / (last - first) if last > first else 0.0
                        worker, at_kill, seconds = restart(worker, data_dir, broker.bootstrap)
                        figures["restarts"].append((at_kill, "own data dir", seconds))
                        say(f"{'':>10}  SIGKILL at {at_kill:,} + restart on its own data dir: "
                            f"counted again in {seconds:.1f} s{restarted_rss(worker)}{restore_sources(worker)}",
                            flush=True)
                wait_counted(worker, events, interval=5.0)
                if "worker_eps" not in figures:
                    first, last, _ = worker.busy_span()
                    figures["worker_eps"] = events / (last - first) if last > first else 0.0
                for lose_store, label in ((False, "own data dir"), (True, "fresh data dir")):
                    worker, at_kill, seconds = restart(worker, data_dir, broker.bootstrap, lose_store)
                    figures["restarts"].append((at_kill, label, seconds))
                    say(f"{'':>10}  SIGKILL at {at_kill:,} + restart on {label}: counted again in {seconds:.1f} s"
                        f"{restarted_rss(worker)}{restore_sources(worker)}", flush=True)
                figures["peak_rss_mib"] = max(p for _, _, p in figures["steps"])
            finally:
                if worker.process is not None and worker.process.poll() is None:
                    worker.stop()
            figures["largest"] = largest_records(broker.bootstrap, [f"{APP_ID}-deltas-changelog", AGGREGATES, ALERTS])
            bare_s, bare_events, _ = bare_consume(broker.bootstrap)
            figures["bare_eps"] = bare_events / bare_s if bare_s else 0.0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    say(f"largest record: {', '.join(f'{t} {n:,} B' for t, n in figures['largest'].items())}")
    ratio = figures["worker_eps"] / figures["bare_eps"] if figures["bare_eps"] else 0.0
    say(f"worker {figures['worker_eps']:,.0f} events/s (its own clock, first incarnation) vs bare client "
        f"{figures['bare_eps']:,.0f} events/s: ratio {ratio:.2f}")
    return figures
