"""``lienthong bench --peer`` and ``--latency``: the worker beside the peer a Python team would pick.

**--peer**, in one run on the same events (a shared machine is noisy: read the ratios):

* **ours, single-event messages** — the events published one per Kafka message
  (Avro, signed, as the gateway, the outbox and agencies' own producers send
  them), one real worker (RocksDB store, every rule) timed by its own clock;
* **peer, single JSON messages** — the same events as JSON, one per message,
  keyed by ``ward|day`` (input already keyed for the counting: no repartition),
  through a Quix Streams 3.x application (``bench/peer_app.py``) doing dedupe by
  event id and per-ward/day counting with RocksDB state and changelogs; timed by
  its own clock from its first to its last message;
* **ours, batched messages** — the same events in ``EventBatch`` messages of
  ``batch_size`` (as ``lienthong import`` sends them), on a fresh broker.

**--latency**: live single-event traffic at ``rate`` events/s for ``seconds``
into a running, caught-up worker; for the k-th event published, the time until
the dashboard's live counters (the ``kpis`` events of ``/api/stream``, what the
dashboard draws) first show at least k events counted. Reports p50 and p99.
Counts are totals, so "the k-th counted" stands for "the k-th published"
(partitions are processed in parallel); the stream's tick (1 s) is part of what
an operator waits for, so it is part of the figure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.throughput import (
    PARTITIONS,
    ROOT,
    BenchWorker,
    WorkerRun,
    bare_consume,
    publish_backlog,
    run_workers,
)
from bench.workload import BENCH_KEY, build_events
from hubbase.broker import EmbeddedBroker
from hubbase.topic_admin import ensure_topics
from schemas.signing import generate_keyring_file

#: The peer's input topic (JSON, keyed ``ward|day``); created with explicit retention
#: because Quix Streams derives its changelog's from it and the embedded broker
#: describes no default.
PEER_TOPIC = "bench.peer-events"
PEER_TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000), "retention.bytes": "-1"}


@dataclass
class PeerRun:
    messages: int
    counted: int
    duplicates: int
    seconds: float
    cpu_seconds: float


@dataclass
class PeerFigures:
    events: int = 0
    batch_size: int = 500
    singles: WorkerRun | None = None
    batched: WorkerRun | None = None
    peer: PeerRun | None = None

    @staticmethod
    def rate(events: int, seconds: float) -> float:
        return events / seconds if seconds > 0 else 0.0

    def lines(self) -> list[str]:
        n = self.events
        rows: list[tuple[str, float, float]] = []
        if self.singles is not None:
            rows.append(("ours, single-event messages (Avro, signed)", self.rate(n, self.singles.seconds),
                         self.singles.cpu_seconds))
        if self.peer is not None:
            rows.append(("peer: Quix Streams, single JSON messages", self.rate(n, self.peer.seconds),
                         self.peer.cpu_seconds))
        if self.batched is not None:
            rows.append((f"ours, batched messages ({self.batch_size} events)", self.rate(n, self.batched.seconds),
                         self.batched.cpu_seconds))
        out = [f"{n:,} events, {PARTITIONS} partitions, one process each",
               f"{'':46} {'events/s':>10}  {'CPU µs/event':>12}"]
        out += [f"{label:46} {rate:>10,.0f}  {cpu / n * 1e6:>12,.0f}" for label, rate, cpu in rows]
        if self.singles is not None and self.peer is not None and self.peer.seconds > 0:
            out.append(f"ours single-event / peer: x{self.peer.seconds / self.singles.seconds:.2f} (rate), "
                       f"x{self.peer.cpu_seconds / self.singles.cpu_seconds:.2f} (CPU per event)")
        if self.batched is not None and self.peer is not None and self.peer.seconds > 0:
            out.append(f"ours batched / peer: x{self.peer.seconds / self.batched.seconds:.2f} (rate)")
        if self.singles is not None and self.singles.groups:
            out.append(f"ours single-event: {self.singles.messages:,} messages in {self.singles.groups:,} group commits "
                       f"({self.singles.messages / self.singles.groups:.1f} per state change)")
        return out


def publish_json(bootstrap: str, events: list[dict[str, Any]]) -> None:
    """The peer's input: each event as one JSON message keyed ``ward|day`` (local day)."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from streams.clock import local_day

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(PEER_TOPIC, PARTITIONS, 1, topic_configs=PEER_TOPIC_CONFIG)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for event in events:
        key = f"{event['ward_code']}|{local_day(event['occurred_at'])}".encode()
        producer.send(PEER_TOPIC, key=key, value=json.dumps(event, separators=(",", ":")).encode())
    producer.flush()
    producer.close()


def run_peer(bootstrap: str, expect: int, data_dir: Path, timeout: float = 1800.0) -> PeerRun:
    """The Quix Streams app in its own process, to its ``expect``-th message."""
    state_dir = data_dir / "peer-state"
    result = subprocess.run(
        [sys.executable, "-m", "bench.peer_app", "--bootstrap", bootstrap, "--topic", PEER_TOPIC,
         "--expect", str(expect), "--state-dir", str(state_dir), "--group", f"bench-peer-{os.getpid()}"],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the peer app failed ({result.returncode}): {result.stderr[-3000:]}")
    raw = json.loads(lines[-1])
    return PeerRun(raw["messages"], raw["counted"], raw["duplicates"], raw["seconds"], raw["cpu_seconds"])


def _bench_env(data_dir: Path) -> None:
    os.environ.setdefault("LIENTHONG_SIGNING_KEYS", str(generate_keyring_file(data_dir / "signing-keys.json")))
    os.environ.setdefault("LIENTHONG_PSEUDONYM_KEY", BENCH_KEY.decode())


def main(events: int = 20_000, batch_size: int = 500, seed: int = 6, quiet: bool = False) -> PeerFigures:
    say = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    figures = PeerFigures(batch_size=batch_size)
    say(f"building {events:,} events (simulated city, pseudonymised, validated)...")
    backlog = build_events(events, seed)
    figures.events = n = len(backlog)
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-peer-"))
    _bench_env(data_dir)
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            say("publishing single-event messages (Avro, signed) and the same events as JSON for the peer...")
            publish_backlog(broker.bootstrap, backlog, 1)
            publish_json(broker.bootstrap, backlog)
            say("ours: one worker on single-event messages...")
            figures.singles = run_workers(broker.bootstrap, data_dir, 1, n, n)
            say("peer: Quix Streams app on single JSON messages...")
            figures.peer = run_peer(broker.bootstrap, n, data_dir)
            if figures.peer.counted + figures.peer.duplicates != n:
                raise RuntimeError(f"the peer processed {figures.peer.messages} messages, expected {n}")
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            say(f"ours: one worker on batched messages ({batch_size} events), on a fresh broker...")
            publish_backlog(broker.bootstrap, backlog, batch_size)
            _, _, messages = bare_consume(broker.bootstrap)
            figures.batched = run_workers(broker.bootstrap, data_dir, 1, n, messages)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if not quiet:
        print()
        for line in figures.lines():
            print(line)
    return figures


# -- latency: publish → dashboard counters ------------------------------------------
@dataclass
class LatencyFigures:
    rate: float
    seconds: float
    published: int = 0
    #: seconds from each event's publish to the dashboard counters showing it
    latencies: list[float] = field(default_factory=list)
    #: events published whose count the dashboard did not show before the end
    unseen: int = 0
    #: how long publishing actually took (the publisher may fall behind the rate)
    publish_seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def lines(self) -> list[str]:
        return [
            f"live single-event traffic: {self.published:,} events at {self.rate:,.0f}/s for {self.seconds:.0f} s "
            f"(published in {self.publish_seconds:.1f} s)",
            f"publish → dashboard counters (/api/stream kpis): p50 {self.percentile(0.50):.2f} s, "
            f"p99 {self.percentile(0.99):.2f} s, max {max(self.latencies, default=float('nan')):.2f} s"
            + (f"; {self.unseen} never shown" if self.unseen else ""),
        ]


def latencies_of(sent_at: list[float], seen: list[tuple[float, int]]) -> tuple[list[float], int]:
    """Seconds from the k-th publish to the first counters showing k events; and how many never showed.

    ``seen``: (time, events counted) in arrival order; the counts only grow.
    """
    counts = [count for _, count in seen]
    latencies, unseen = [], 0
    for k, at in enumerate(sent_at, start=1):
        shown = bisect_left(counts, k)  # the first kpis event counting at least k events
        if shown < len(seen):
            latencies.append(max(0.0, seen[shown][0] - at))
        else:
            unseen += 1
    return latencies, unseen


def _watch_counters(url: str, seen: list[tuple[float, int]], stop: threading.Event) -> None:
    """(time, events counted) of every ``kpis`` event of the dashboard's live stream."""
    with urllib.request.urlopen(f"{url}/api/stream", timeout=30) as stream:
        kind = ""
        for raw in stream:
            if stop.is_set():
                return
            line = raw.decode().strip()
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "kpis":
                kpis = json.loads(line.split(":", 1)[1])["kpis"]
                seen.append((time.time(), int(kpis["events_total"]) + int(kpis["events_duplicate"])))


def latency(rate: float = 1000.0, seconds: float = 30.0, seed: int = 7, quiet: bool = False) -> LatencyFigures:
    from connectors.sdk import Publisher

    say = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    figures = LatencyFigures(rate, seconds)
    events = build_events(int(rate * seconds), seed)
    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-latency-"))
    _bench_env(data_dir)
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            worker = BenchWorker(broker.bootstrap, data_dir, f"lienthong-latency-{os.getpid()}", "latency")
            worker.start()
            try:
                deadline = time.monotonic() + 180
                while True:
                    worker.check_alive()
                    try:
                        if len(worker.get("/healthz")["partitions_owned"]) == PARTITIONS:
                            break
                    except OSError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError("the worker did not take its partitions")
                    time.sleep(0.2)
                seen: list[tuple[float, int]] = []
                stop = threading.Event()
                watcher = threading.Thread(target=_watch_counters, args=(worker.url, seen, stop), daemon=True)
                watcher.start()
                time.sleep(2)  # the stream is open
                say(f"publishing {len(events):,} single-event messages at {rate:,.0f} events/s...")
                publisher = Publisher(broker.bootstrap, connector="bench-latency", batch_size=1)
                sent_at: list[float] = []
                start = time.time()
                try:
                    for i, event in enumerate(events):
                        pause = start + i / rate - time.time()
                        if pause > 0:
                            time.sleep(pause)
                        sent_at.append(time.time())
                        publisher.publish(event)
                    publisher.flush()
                finally:
                    publisher.close()
                figures.published = len(sent_at)
                deadline = time.monotonic() + 60
                while (not seen or seen[-1][1] < len(sent_at)) and time.monotonic() < deadline:
                    time.sleep(0.5)
                stop.set()
            finally:
                worker.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    figures.latencies, figures.unseen = latencies_of(sent_at, seen)
    figures.publish_seconds = sent_at[-1] - sent_at[0] if len(sent_at) > 1 else 0.0
    if not quiet:
        print()
        for line in figures.lines():
            print(line)
    return figures
