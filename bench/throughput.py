"""``lienthong bench``: the worker beside a bare Kafka client, on one backlog, in one run.

Figures on a shared machine are noisy, so everything is measured in the same
invocation on the same data and reported as ratios as well as rates:

(c) **import** — :class:`connectors.sdk.Publisher` (batches, acks=all) producing the
    backlog of ``events`` pre-built realistic events (the simulated city:
    every agency, chains, procedures, duplicates and late events, pseudonymised);
(b) **bare client** — an aiokafka consumer (no group; every partition assigned)
    reading the same messages and decoding every event with fastavro
    (``EventCodec.decode_message``) to the end: the ceiling for any Python
    consumer of these topics;
(a) **worker** — a real ``python -m lienthong worker`` process (RocksDB store, all
    counters and flag rules, state committed) processing the whole backlog, timed
    by the worker itself from its first to its last processed message (after the
    group join), once ``/api/kpis`` shows ``events_total + events_duplicate`` equal
    to the backlog; with its peak RSS (``VmHWM``).

With ``workers=2`` a second consumer group of two workers processes the same
backlog again, and the scaling factor against the single worker is reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.signing import SigningFigures
from bench.signing import measure as measure_signing
from bench.workload import BENCH_KEY, build_events
from connectors.sdk import Publisher
from hubbase.broker import EmbeddedBroker, free_port, stop_process
from hubbase.topic_admin import ensure_topics
from schemas.codec import EventCodec
from schemas.signing import generate_keyring_file
from schemas.topics import ALERTS, EVENT_TOPICS

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
BACKFILL_LINGER_S = 3600.0
#: Events the signing cost is measured on (enough for stable per-event figures).
SIGNING_SAMPLE = 50_000


@dataclass
class Figures:
    events: int = 0
    messages: int = 0
    import_s: float = 0.0
    bare_s: float = 0.0
    bare_events: int = 0
    runs: dict[int, WorkerRun] = field(default_factory=dict)
    signing: SigningFigures | None = None

    def rate(self, seconds: float, n: int | None = None) -> float:
        return (self.events if n is None else n) / seconds if seconds > 0 else 0.0


@dataclass
class WorkerRun:
    workers: int
    seconds: float
    counted: int
    messages: int
    peak_rss_mib: list[float]
    #: harness view: from a poll seeing the first message to the counts confirmed
    #: (includes poll and HTTP latency; the worker's clock is ``seconds``)
    observed_seconds: float = 0.0
    #: CPU seconds the workers used from their first to their last message
    cpu_seconds: float = 0.0
    #: flag changes the run published on lienthong.alerts
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: of which about flags a live run of the backlog never announces (with ``flag_churn``)
    spurious: int | None = None
    #: group commits the workers wrote for ``messages`` (docs/exactly-once.md §2b)
    groups: int = 0


# -- (c) import ---------------------------------------------------------------
def epoch_s(iso: str) -> float:
    """Epoch seconds of an API time (ISO-8601 UTC, ``...Z``)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def publish_backlog(bootstrap: str, events: list[dict[str, Any]], batch_size: int) -> float:
    """Seconds for the Publisher to send and get every acknowledgement."""
    # A backfill: full batches. (The Publisher's default linger sends partial
    # batches every 0.5 s, which at import speed means ~100-event messages.)
    publisher = Publisher(bootstrap, connector="bench", batch_size=batch_size, linger=BACKFILL_LINGER_S)
    for topic in EVENT_TOPICS:
        publisher.partitions_of(topic)  # metadata before the clock starts
    start = time.perf_counter()
    try:
        for event in events:
            # a plain dict, not prepare()'s ValidEvent: publish validates it, one timed
            # validation per event, as the importer's (it validates each row as it reads it)
            publisher.publish(dict(event))
        publisher.flush()
        return time.perf_counter() - start
    finally:
        publisher.close()


# -- (b) bare client ----------------------------------------------------------
async def _bare_consume(bootstrap: str) -> tuple[float, int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    codec = EventCodec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = {tp: off for tp, off in (await consumer.end_offsets(tps)).items() if off > 0}
        remaining = dict(ends)
        events = messages = 0
        start: float | None = None
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if start is None and batch:
                start = time.perf_counter()
            for tp, records in batch.items():
                for record in records:
                    events += len(codec.decode_message(record.value))
                    messages += 1
                    if tp in remaining and record.offset + 1 >= remaining[tp]:
                        del remaining[tp]
        return time.perf_counter() - (start or time.perf_counter()), events, messages
    finally:
        await consumer.stop()


def bare_consume(bootstrap: str) -> tuple[float, int, int]:
    return asyncio.run(_bare_consume(bootstrap))


# -- flag changes on lienthong.alerts --------------------------------------------
async def _read_alerts(bootstrap: str) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    codec = EventCodec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(ALERTS, p) for p in range(PARTITIONS)]  # ensure_topics made them all alike
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        alerts: list[dict[str, Any]] = []
        while True:  # to the end by reading (the broker's end offsets may be short)
            batch = await consumer.getmany(timeout_ms=3000, max_records=10_000)
            if not batch:
                return alerts
            for records in batch.values():
                alerts.extend(codec.decode_record(r.value)[1] for r in records)
    finally:
        await consumer.stop()


def read_alerts(bootstrap: str) -> list[dict[str, Any]]:
    """Every flag change on ``lienthong.alerts`` so far, decoded."""
    return asyncio.run(_read_alerts(bootstrap))


def _alert_key(alert: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(alert[k] for k in ("flag_id", "status", "opened_at", "resolved_at", "detail"))


# -- (a) real workers -----------------------------------------------------------
class BenchWorker:
    def __init__(self, bootstrap: str, data_dir: Path, app_id: str, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{name}.log"
        self.env = dict(os.environ)
        self.env.update(
            LIENTHONG_BROKER=bootstrap,
            LIENTHONG_DATA_DIR=str(data_dir),
            LIENTHONG_APP_ID=app_id,
            LIENTHONG_STORE="rocksdb://",
            LIENTHONG_WEB_PORT=str(self.port),
            LIENTHONG_REBALANCE_TIMEOUT="2",
            LIENTHONG_PARTITIONS=str(PARTITIONS),
            LIENTHONG_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lienthong", "worker", "--name", self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def messages(self) -> int:
        self.check_alive()
        try:
            return int(self.get("/healthz")["messages"])
        except OSError:
            return 0  # web server not up yet

    def busy_span(self) -> tuple[float, float, float]:
        """When this worker processed its first and its latest message (its own clock),
        and the CPU seconds it used in between (all its threads).

        Taken from the worker rather than from when a poll saw progress: a busy
        worker can answer an HTTP poll late, which would start the clock late.
        CPU time is the steadier figure on a shared machine: other tenants change
        how long the work takes, much less how much CPU it needs.
        """
        health = self.get("/healthz")
        cpu = float(health["last_message_cpu_s"]) - float(health["first_message_cpu_s"])
        return epoch_s(health["first_message_at"]), epoch_s(health["last_message_at"]), cpu

    def counted(self) -> int:
        kpis = self.get("/api/kpis")["kpis"]
        return int(kpis["events_total"]) + int(kpis["events_duplicate"])

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 30)


def run_workers(bootstrap: str, data_dir: Path, count: int, expected_events: int, expected_messages: int,
                timeout: float = 900.0, profile: Path | None = None) -> WorkerRun:
    """Start ``count`` workers in a fresh group on the backlog; time first message → all counted.

    ``profile``: record the first worker with py-spy into this SVG flame graph
    (or ``.txt``: py-spy's raw collapsed stacks).
    """
    app_id = f"lienthong-bench-{count}w-{os.getpid()}"
    workers = [BenchWorker(bootstrap, data_dir / app_id, app_id, f"bench-{count}w-{i}") for i in range(count)]
    for worker in workers:
        worker.start()
    spy: subprocess.Popen[bytes] | None = None
    if profile is not None:
        assert workers[0].process is not None
        fmt = "raw" if profile.suffix == ".txt" else "flamegraph"
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(workers[0].process.pid),
             "-o", str(profile), "-f", fmt, "-r", "200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + timeout
        while not any(w.messages() > 0 for w in workers):
            if time.monotonic() > deadline:
                raise TimeoutError("no worker processed a message")
            time.sleep(0.05)
        seen_first = time.perf_counter()
        counted = 0
        while True:
            done = sum(w.messages() for w in workers)
            if done >= expected_messages:
                # every message is in some worker's live state; a worker serves the
                # partitions of the others from their snapshots (within an interval)
                counted = max(w.counted() for w in workers)
                if counted >= expected_events:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers processed {done}/{expected_messages} messages, counted {counted}")
            time.sleep(0.1)
        observed = time.perf_counter() - seen_first
        spans = [w.busy_span() for w in workers if w.messages() > 0]
        start = min(first for first, _, _ in spans)
        seconds = max(last for _, last, _ in spans) - start
        cpu_seconds = sum(cpu for _, _, cpu in spans)
        if len(spans) > 1:
            print("    workers' first and last message, seconds after the group's first: "
                  + ", ".join(f"{first - start:.1f}–{last - start:.1f}" for first, last, _ in spans), flush=True)
        groups = sum(int(w.get("/healthz").get("groups", 0)) for w in workers)
        return WorkerRun(count, seconds, counted, done, [w.peak_rss_mib() for w in workers], observed,
                         cpu_seconds, groups=groups)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        for worker in workers:
            worker.stop()


# -- the whole benchmark --------------------------------------------------------
def main(events: int = 200_000, batch_size: int = 500, workers: int = 1, seed: int = 6,
         quiet: bool = False, profile: Path | None = None, flag_churn: bool = False) -> Figures:
    say = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    figures = Figures()
    say(f"building {events:,} events (simulated city, pseudonymised, validated)...")
    backlog = build_events(events, seed)
    figures.events = len(backlog)
    live_announced: set[str] | None = None
    if flag_churn:
        from bench.flag_churn import live_run

        say("replaying the backlog as a live run (one event at a time, as sent) for the flags it announces...")
        live_announced = {c["flag_id"] for c in live_run(backlog, PARTITIONS).changes}
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-"))
    # the bench is a demo of sorts: its own keys, unless the operator gave some
    os.environ.setdefault("LIENTHONG_SIGNING_KEYS", str(generate_keyring_file(data_dir / "signing-keys.json")))
    os.environ.setdefault("LIENTHONG_PSEUDONYM_KEY", BENCH_KEY.decode())
    say("(d) what proving the sender costs: signature checks, worker core with and without...")
    figures.signing = measure_signing(backlog[:SIGNING_SAMPLE], batch_size)
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            say(f"(c) importing through Publisher (batch {batch_size}, acks=all)...")
            figures.import_s = publish_backlog(broker.bootstrap, backlog, batch_size)
            del backlog
            say("(b) bare aiokafka consumer + fastavro decode...")
            figures.bare_s, figures.bare_events, figures.messages = bare_consume(broker.bootstrap)
            if figures.bare_events != figures.events:
                raise RuntimeError(f"bare consumer read {figures.bare_events} events, expected {figures.events}")
            published: Counter[tuple[Any, ...]] = Counter()
            for count in sorted({1, workers}):
                say(f"(a) {count} worker process(es), RocksDB store, all rules...")
                run = figures.runs[count] = run_workers(
                    broker.bootstrap, data_dir, count, figures.events, figures.messages,
                    profile=profile if count == 1 else None,
                )
                # this run's alerts: everything on the topic minus the earlier runs' (same backlog)
                alerts = read_alerts(broker.bootstrap)
                earlier = Counter(published)
                for alert in alerts:
                    key = _alert_key(alert)
                    if earlier[key]:
                        earlier[key] -= 1
                    else:
                        run.alerts.append(alert)
                published.update(_alert_key(a) for a in run.alerts)
                if live_announced is not None:
                    run.spurious = sum(a["flag_id"] not in live_announced for a in run.alerts)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if not quiet:
        print_table(figures, batch_size)
    return figures


def print_table(f: Figures, batch_size: int) -> None:
    bare = f.rate(f.bare_s)
    rows = [
        ("(c) import: Publisher, acks=all", f.rate(f.import_s), "", ""),
        ("(b) bare aiokafka + fastavro decode", bare, "1.00", ""),
    ]
    one = f.runs.get(1)
    for count, run in sorted(f.runs.items()):
        rate = f.rate(run.seconds)
        label = "(a) worker, end to end" if count == 1 else f"(a) {count} workers, one group, combined"
        rss = " / ".join(f"{r:.0f}" for r in run.peak_rss_mib)
        rows.append((label, rate, f"{rate / bare:.2f}", rss))
    print()
    print(f"{f.events:,} events in {f.messages:,} messages (batch {batch_size}, {PARTITIONS} partitions)")
    print(f"{'':42} {'events/s':>10}  {'vs bare':>7}  {'peak RSS MiB':>12}")
    for label, rate, ratio, rss in rows:
        print(f"{label:42} {rate:>10,.0f}  {ratio:>7}  {rss:>12}")
    for count, run in sorted(f.runs.items()):
        print(f"    {count} worker(s): {run.cpu_seconds / f.events * 1e6:.1f} µs of worker CPU per event "
              f"({run.cpu_seconds:.1f} CPU s over {run.seconds:.1f} s)")
        print(f"    {count} worker(s) as the harness polled them (first message seen → counts confirmed): "
              f"{f.rate(run.observed_seconds):,.0f} events/s")
        statuses = Counter(a["status"] for a in run.alerts)
        churn = "" if run.spurious is None else f"; about flags a live run never announces: {run.spurious:,}"
        print(f"    {count} worker(s): {len(run.alerts):,} flag changes published {dict(statuses)}{churn}")
    if f.signing is not None:
        print("(d) signatures (the worker verifies every message before counting):")
        for line in f.signing.lines():
            print(line)
    if one is not None and len(f.runs) > 1:
        for count, run in sorted(f.runs.items()):
            if count > 1:
                print(f"scaling {count} workers vs 1: x{one.seconds / run.seconds:.2f}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the single worker into this file (.svg flame graph, .txt collapsed stacks)")
    a = parser.parse_args()
    main(events=a.events, batch_size=a.batch_size, workers=a.workers, profile=a.profile)
