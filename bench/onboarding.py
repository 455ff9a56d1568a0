"""The police-onboarding backlog: a month of ID cards, social insurance silent.

Issue 12's crash: 250,000 July ID cards of distinct citizens are read while
social insurance sends nothing, its feed not yet idle (so its clock stays put);
then the first August cards come, the feed is idle, its clock follows the
police's, and every July card's ``SYNC_MISSING`` deadline is due at once. One
worker built a 19 MB delta for that one message. The scenario is shared by the
processor-level test, the broker test and the soak benchmark, at any scale.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from schemas.wards import ward_codes

#: 2024-07-01T00:00:00+07:00
JULY_MS = 1_719_766_800_000
DAY_MS = 86_400_000
#: 2024-08-01T00:00:00+07:00
AUGUST_MS = JULY_MS + 31 * DAY_MS


def citizen_ref(n: int) -> str:
    """A pseudonym-shaped citizen reference (never a personal ID number)."""
    return hashlib.sha256(f"onboarding-citizen-{n}".encode()).hexdigest()


def id_card(at: int, n: int, ward: str) -> dict[str, Any]:
    return {
        "event_type": "IdCardIssued",
        "event_id": str(uuid.UUID(int=n + 1)),
        "source": "POLICE",
        "occurred_at": at,
        "ward_code": ward,
        "citizen_ref": citizen_ref(n),
        "correlation_id": None,
        "card_kind": "CCCD_CHIP",
    }


def july_cards(count: int, wards: int = 168) -> list[dict[str, Any]]:
    """``count`` cards of distinct citizens, spread evenly over July and ``wards`` wards, in time order."""
    codes = sorted(ward_codes())[:wards]
    step = (31 * DAY_MS) // max(1, count)
    return [id_card(JULY_MS + i * step, i, codes[i % len(codes)]) for i in range(count)]


def august_cards(count: int, first: int, wards: int = 168) -> list[dict[str, Any]]:
    """The first August cards (citizen numbers from ``first``), an hour apart."""
    codes = sorted(ward_codes())[:wards]
    return [id_card(AUGUST_MS + i * 3_600_000, first + i, codes[i % len(codes)]) for i in range(count)]


# -- the benchmark: `lienthong bench --onboarding CARDS` -------------------------
def nudges(per_partition: int, partitions: int, first: int) -> list[dict[str, Any]]:
    """Welfare payments ten days into August, ``per_partition`` on every partition: the next messages."""
    from schemas.contracts import partition_key
    from schemas.partitioning import partition_for

    out: list[dict[str, Any]] = []
    count = dict.fromkeys(range(partitions), 0)
    n = first
    while min(count.values()) < per_partition:
        e = dict(id_card(AUGUST_MS + 10 * DAY_MS, n, min(ward_codes())), event_type="WelfarePaid", source="LABOUR",
                 channel="BANK_ACCOUNT", amount_vnd=1000)
        e.pop("card_kind")
        p = partition_for(partition_key(e), partitions)
        if count[p] < per_partition:
            count[p] += 1
            out.append(e)
        n += 1
    return out


def largest_records(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """The largest record (key + value bytes) on each topic, read from the start."""
    from kafka import KafkaConsumer

    out: dict[str, int] = {}
    for topic in topics:
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000, max_partition_fetch_bytes=64 * 1024 * 1024,
                                 fetch_max_bytes=64 * 1024 * 1024)
        try:
            out[topic] = max((len(m.key or b"") + len(m.value or b"") for m in consumer), default=0)
        finally:
            consumer.close()
    return out


def use_bench_keys() -> None:
    """Signing keys and a pseudonym key for the bench's own broker, unless the operator gave some
    (as ``bench.throughput`` does): workers refuse to start without them. The keys
    live in a temporary directory removed when the bench ends."""
    import atexit
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from bench.workload import BENCH_KEY
    from schemas.signing import generate_keyring_file

    if "LIENTHONG_SIGNING_KEYS" not in os.environ:
        keys = Path(tempfile.mkdtemp(prefix="lienthong-bench-keys-"))
        atexit.register(shutil.rmtree, keys, True)
        os.environ["LIENTHONG_SIGNING_KEYS"] = str(generate_keyring_file(keys / "signing-keys.json"))
    os.environ.setdefault("LIENTHONG_PSEUDONYM_KEY", BENCH_KEY.decode())


def run_variant(cards: int, label: str, env: dict[str, str], idle_s: float, say: Any) -> dict[str, Any]:
    """One worker on a fresh broker through the onboarding backlog; its figures."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from bench.throughput import PARTITIONS, BenchWorker
    from connectors.sdk import Publisher
    from hubbase.broker import EmbeddedBroker
    from hubbase.topic_admin import ensure_topics
    from schemas.topics import AGGREGATES, ALERTS

    data_dir = Path(tempfile.mkdtemp(prefix="lienthong-onboarding-"))
    use_bench_keys()
    figures: dict[str, Any] = {"variant": label}
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            with Publisher(broker.bootstrap, connector="police", batch_size=500) as publisher:
                for card in july_cards(cards):
                    publisher.publish(card)
            worker = BenchWorker(broker.bootstrap, data_dir, "onboarding", label)
            worker.env.update(env, LIENTHONG_SLA_SOURCE_IDLE=str(idle_s / 3600))
            worker.start()
            started = time.monotonic()
            try:
                while True:
                    worker.check_alive()
                    try:
                        if worker.get("/api/kpis")["kpis"]["id_cards_issued"] >= cards:
                            break
                    except OSError:
                        pass
                    time.sleep(0.5)
                figures["july_counted_s"] = round(time.monotonic() - started, 1)
                time.sleep(max(0.0, idle_s + 3 - (time.monotonic() - started)))
                late = nudges(per_partition=max(20, cards // PARTITIONS // 400 + 20), partitions=PARTITIONS,
                              first=cards)
                say(f"  [{label}] July counted; {len(late)} August messages make the deadlines due...")
                jump = time.monotonic()
                with Publisher(broker.bootstrap, connector="labour", batch_size=1) as publisher:
                    for e in late:
                        publisher.publish(e)
                figures["survived"] = True
                settled, last = 0.0, None
                while time.monotonic() - settled < 10 or settled == 0.0:
                    if worker.process is not None and worker.process.poll() is not None:
                        figures["survived"] = False
                        break
                    kpis = worker.get("/api/kpis")["kpis"]
                    now = (kpis["events_total"], kpis["flags_open"])
                    if now != last or kpis["events_total"] < cards + len(late):
                        last, settled = now, time.monotonic()
                    time.sleep(1.0)
                figures["settled_s"] = round(settled - jump, 1) if figures["survived"] else None
                figures["flags_open"] = last[1] if last else None
                figures["peak_rss_mib"] = round(worker.peak_rss_mib(), 1) if figures["survived"] else None
            finally:
                if worker.process is not None and worker.process.poll() is None:
                    worker.stop()
            log = worker.log_path.read_text(errors="replace")
            figures["crash"] = "MessageSizeTooLargeError" if "MessageSizeTooLarge" in log else ""
            figures["largest"] = largest_records(
                broker.bootstrap, ["onboarding-deltas-changelog", AGGREGATES, ALERTS])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main(cards: int = 100_000, idle_s: float = 45.0, quiet: bool = False) -> list[dict[str, Any]]:
    """The onboarding backlog twice in one run: unbounded (as before issue 12) and bounded (the defaults)."""
    say = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    variants = [
        ("unbounded", {"LIENTHONG_DEADLINE_STEP": str(10**9), "LIENTHONG_MAX_RECORD_BYTES": str(64 * 1024 * 1024)}),
        ("bounded", {}),
    ]
    results = []
    for label, env in variants:
        say(f"{label}: {cards:,} July ID cards, then August (one worker, RocksDB store)...")
        results.append(run_variant(cards, label, env, idle_s, say))
    if not quiet:
        print(f"\npolice onboarding, {cards:,} July ID cards then August, one worker")
        print(f"{'variant':<10} {'survived':>8} {'settled s':>9} {'peak RSS MiB':>12} "
              f"{'largest changelog':>17} {'largest snapshot':>16} {'largest alert':>13}")
        for r in results:
            largest = list(r["largest"].values())
            print(f"{r['variant']:<10} {('yes' if r['survived'] else 'NO ' + r['crash']):>8} "
                  f"{r['settled_s'] if r['settled_s'] is not None else '-':>9} "
                  f"{r['peak_rss_mib'] if r['peak_rss_mib'] is not None else '-':>12} "
                  f"{largest[0]:>17,} {largest[1]:>16,} {largest[2]:>13,}")
    return results
