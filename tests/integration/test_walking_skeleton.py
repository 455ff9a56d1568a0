"""One event family from a CSV export to the city counter, on the real broker."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.codec import EventCodec
from schemas.wards import ward_codes
from tests.support import ROOT, hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration


def write_id_cards(path: Path, count: int, bad_rows: int = 0) -> None:
    wards = sorted(ward_codes())[:4]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["event_type", "occurred_at", "ward_code", "citizen_id", "card_kind"])
        for i in range(count):
            writer.writerow(
                ["IdCardIssued", f"2024-06-{1 + i % 28:02d}T0{i % 10}:15:00+07:00", wards[i % 4],
                 f"{79_000_000_000 + i:012d}", "CCCD_CHIP" if i % 3 else "CAN_CUOC"]
            )
        for i in range(bad_rows):
            writer.writerow(["IdCardIssued", "not-a-time", sorted(ward_codes())[0], f"{89_000_000_000 + i:012d}", "CCCD_CHIP"])


def test_imported_id_cards_are_counted_exactly(broker, workers, tmp_path):
    worker = workers()
    csv_path = tmp_path / "cards.csv"
    write_id_cards(csv_path, 400)
    result = run_cli("import", str(csv_path), "--agency", "POLICE", "--no-progress", env=hub_env(broker, tmp_path))
    assert result.returncode == 0, result.stderr
    kpis = wait_for(lambda: (k := worker.kpis())["id_cards_issued"] == 400 and k, 60, what="400 ID cards")
    assert kpis["events_total"] == 400


def test_bad_rows_are_reported_and_good_rows_still_imported(broker, workers, tmp_path):
    worker = workers()
    csv_path = tmp_path / "cards.csv"
    write_id_cards(csv_path, 50, bad_rows=2)
    result = run_cli("import", str(csv_path), "--agency", "POLICE", "--no-progress", env=hub_env(broker, tmp_path))
    assert result.returncode == 1
    assert "line 52: occurred_at" in result.stderr and "line 53: occurred_at" in result.stderr
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 50, 60, what="the 50 good rows")


def test_imported_rows_decode_from_the_topic_with_pseudonyms_only(broker, tmp_path):
    from kafka import KafkaConsumer

    csv_path = tmp_path / "cards.csv"
    write_id_cards(csv_path, 30)
    assert run_cli("import", str(csv_path), "--agency", "POLICE", "--no-progress",
                   env=hub_env(broker, tmp_path)).returncode == 0
    consumer = KafkaConsumer("lienthong.identity", bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    values = [m.value for m in consumer]
    consumer.close()
    events = [event for value in values for event in EventCodec().decode_message(value)]
    assert sorted(e["event_type"] for e in events) == ["IdCardIssued"] * 30
    assert all(len(e["citizen_ref"]) == 64 for e in events)
    assert b"79000000000" not in b"".join(values)


def test_broker_command_stops_its_child_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lienthong", "broker", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "broker listening on 127.0.0.1:" in line
    children = wait_for(lambda: _children(proc.pid), 10, what="the tansu child")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    time.sleep(0.5)
    assert not any(_alive(pid) for pid in children), "tansu outlived the broker command"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
