"""Kill → restart on a backlog, again and again: does every restarted worker finish?

Reproduces issue 11's stall by hand, far beyond what CI runs. Each run: a fresh
embedded broker, a CSV backlog of ID cards imported with ``lienthong import``
(full batches), one worker (``--mode restart``) or two (``--mode takeover``); one
worker is SIGKILLed (its whole process group) at a random point between 10% and
70% of the stream, then (restart mode) started again on the same data dir and
port. A run is **exact** when the KPIs reach the truth, **frozen** when the count
does not move for ``--freeze-after`` seconds while it is short of the truth. A
frozen worker's state is saved for diagnosis (``py-spy dump`` and its log).

    nice .venv/bin/python -m bench.kill_loop --runs 50 --mode restart
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lienthong.broker import EmbeddedBroker
from lienthong.topics import ensure_topics
from schemas.wards import ward_codes
from tests.support import WorkerProcess, get_json, hub_env, run_cli


def write_id_cards(path: Path, count: int, seed: int) -> None:
    """A police export of ``count`` ID cards issued over the city's wards."""
    rng = random.Random(seed)
    wards = sorted(ward_codes())
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["event_type", "occurred_at", "ward_code", "citizen_id", "card_kind"])
        for i in range(count):
            out.writerow(["IdCardIssued", f"2024-06-{1 + i % 28:02d}T08:{i % 60:02d}:00+07:00",
                          wards[i % len(wards)], f"079{rng.randrange(10**9):09d}", "CCCD_CHIP"])


def events_total(worker: WorkerProcess) -> int | None:
    try:
        return int(get_json(f"{worker.url}/api/kpis", timeout=3)["kpis"]["events_total"])
    except Exception:  # noqa: BLE001 - not up yet, or being killed
        return None


def kill_group(worker: WorkerProcess) -> None:
    """SIGKILL the worker and every process it started (what an OOM killer or a power cut does)."""
    if worker.process and worker.process.poll() is None:
        try:
            os.killpg(os.getpgid(worker.process.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.process.wait(10)


def start(bootstrap: str, tmp: Path, name: str, port: int | None = None, wait: bool = False) -> WorkerProcess:
    worker = WorkerProcess(bootstrap, tmp, name, store="rocksdb://")
    if port is not None:
        worker.port = port
        worker.url = f"http://127.0.0.1:{port}"
        worker.env["LIENTHONG_WEB_PORT"] = str(port)
    worker.env.update({k: v for k, v in os.environ.items() if k.startswith("LIENTHONG_DEBUG")})
    # own process group, so the kill takes the whole group as the reproducer did
    worker.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = worker.log_path.open("ab")
    worker.process = subprocess.Popen(
        [sys.executable, "-m", "lienthong", "worker", "--name", name],
        env=worker.env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,
    )
    if wait:
        worker.wait_ready()
    return worker


def watch(worker: WorkerProcess, truth: int, freeze_after: float, limit: float) -> tuple[str, int | None]:
    """'exact', 'frozen' or 'timeout', with the last count seen."""
    last, last_change = None, time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        count = events_total(worker)
        if count == truth:
            return "exact", count
        if count is not None and count > truth:
            return "over", count
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > freeze_after:
            return "frozen", last
        time.sleep(0.5)
    return "timeout", last


def diagnose(worker: WorkerProcess, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    assert worker.process is not None
    spy = Path(sys.executable).parent / "py-spy"
    dump = subprocess.run([str(spy), "dump", "--pid", str(worker.process.pid)], capture_output=True, text=True)
    (out / "py-spy.txt").write_text(dump.stdout + dump.stderr)
    try:
        (out / "healthz.json").write_text(json.dumps(get_json(f"{worker.url}/healthz"), indent=1))
    except Exception as exc:  # noqa: BLE001
        (out / "healthz.json").write_text(repr(exc))
    shutil.copy(worker.log_path, out / "worker.log")
    bootstrap = worker.env["LIENTHONG_BROKER"]
    (out / "changelog.json").write_text(json.dumps(read_changelog(bootstrap)))


def read_changelog(bootstrap: str) -> dict[str, Any]:
    """Every delta's (topic, offset) per changelog partition, read to the end, and the reported end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    topic = "lienthong-deltas-changelog"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000,
                             max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    tps = [TopicPartition(topic, p) for p in range(8)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    out: dict[str, Any] = {"end_offsets": {tp.partition: ends[tp] for tp in tps}, "deltas": {}}
    for record in consumer:
        delta = json.loads(record.value)
        out["deltas"].setdefault(record.partition, []).append([record.offset, delta["t"], delta["o"], delta["s"]])
    consumer.close()
    return out


def ensure_signing_keys() -> None:
    """Give the importer and workers a keyring of their own unless one is configured."""
    if os.environ.get("LIENTHONG_SIGNING_KEYS"):
        return
    from schemas.signing import generate_keyring_file

    keys = Path(tempfile.mkdtemp(prefix="kill-loop-keys-")) / "keys.json"
    os.environ["LIENTHONG_SIGNING_KEYS"] = str(generate_keyring_file(keys))


def one_run(run: int, mode: str, events: int, freeze_after: float, keep: Path, rng: random.Random,
            keep_logs: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kill-loop-"))
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, 8)
            csv_path = tmp / "police.csv"
            write_id_cards(csv_path, events, seed=run)
            # the backlog first, as the issue has it: the workers start on a full topic
            imported = run_cli("import", str(csv_path), "--agency", "POLICE", "--no-progress",
                               env=hub_env(broker.bootstrap, tmp))
            assert imported.returncode == 0, imported.stderr[-2000:]
            workers = [start(broker.bootstrap, tmp, "w1")]
            if mode == "takeover":
                workers.append(start(broker.bootstrap, tmp, "w2"))
            victim = workers[-1]
            at = rng.uniform(0.10, 0.70)
            # the whole city's count as the victim sees it (its own partitions are live)
            deadline = time.monotonic() + 300
            while (events_total(workers[0]) or 0) < at * events and time.monotonic() < deadline:
                time.sleep(0.02)
            killed_at = events_total(workers[0])
            kill_group(victim)
            if mode == "restart":
                survivor = start(broker.bootstrap, tmp, "w1", port=victim.port)
            else:
                survivor = workers[0]
            outcome, count = watch(survivor, events, freeze_after, limit=600)
            result = {"run": run, "mode": mode, "kill_at": round(at, 2), "killed_at": killed_at,
                      "outcome": outcome, "count": count}
            if outcome != "exact":
                diagnose(survivor, keep / f"run-{run:03d}")
            elif keep_logs:
                # exact runs too: what a healthy restart looks like, to compare with a frozen one
                (keep / f"run-{run:03d}").mkdir(parents=True, exist_ok=True)
                for log_path in tmp.glob("*.log"):
                    shutil.copy(log_path, keep / f"run-{run:03d}" / log_path.name)
            for worker in [*workers, survivor]:
                kill_group(worker)
            return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=("restart", "takeover"), default="restart")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--freeze-after", type=float, default=60.0, help="Seconds without progress that count as frozen.")
    parser.add_argument("--keep", type=Path, default=Path("kill-loop-out"), help="Where frozen runs' diagnostics go.")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep-logs", action="store_true", help="Keep the worker logs of exact runs too.")
    args = parser.parse_args()
    ensure_signing_keys()
    rng = random.Random(args.seed)
    tally: dict[str, int] = {}
    for run in range(args.runs):
        result = one_run(run, args.mode, args.events, args.freeze_after, args.keep, rng, args.keep_logs)
        tally[result["outcome"]] = tally.get(result["outcome"], 0) + 1
        print(json.dumps(result), flush=True)
    print(json.dumps({"mode": args.mode, "runs": args.runs, "tally": tally}), flush=True)


if __name__ == "__main__":
    main()
