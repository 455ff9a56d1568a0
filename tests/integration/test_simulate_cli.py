"""``lienthong simulate`` against the real broker and a real worker, checked against the truth."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from connectors.csv_import import parse_time
from connectors.simulator import generate_city
from schemas.codec import EventCodec
from tests.support import ROOT, hub_env, run_cli, wait_for
from tests.truth import expected_kpis

pytestmark = pytest.mark.integration

START = "2024-06-01T00:00:00+07:00"
EXACT_KPIS = (
    "id_cards_issued",
    "events_total",
    "events_duplicate",
    "birth_chain_received",
    "birth_chain_completed",
    "death_chain_received",
    "death_chain_completed",
    "procedures_completed_on_time",
)


def test_simulated_city_is_counted_exactly_as_the_truth(broker, workers, tmp_path):
    result = run_cli(
        "simulate",
        "--events",
        "2000",
        "--seed",
        "3",
        "--rate",
        "2000",
        "--days",
        "7",
        "--start",
        START,
        env=hub_env(broker, tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published 2000 events" in result.stdout
    truth = expected_kpis(generate_city(3, parse_time(START, "start"), 7, 2000))
    assert (
        truth["events_duplicate"] > 0 and truth["birth_chain_completed"] > 0
    )  # the run exercises them
    worker = workers()
    expected = {name: truth[name] for name in EXACT_KPIS}

    def counted() -> dict[str, int] | None:
        kpis = worker.kpis()
        return {name: kpis[name] for name in EXACT_KPIS}

    wait_for(lambda: counted() == expected, 180, what=f"the worker to reach the truth {expected}")


def test_simulate_stopped_by_sigint_flushes_what_it_counted(broker, workers, tmp_path):
    worker = workers()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lienthong", "simulate", "--seed", "4", "--rate", "100"],
        env=hub_env(broker, tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: worker.kpis()["events_total"] > 0,
            120,
            what="simulated events to reach the worker",
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    published = int(out.strip().splitlines()[-1].split()[1])
    wait_for(
        lambda: (k := worker.kpis())["events_total"] + k["events_duplicate"] == published,
        120,
        what=f"all {published} published events to be counted",
    )


def test_simulated_personal_id_numbers_never_reach_a_topic(broker, tmp_path):
    from kafka import KafkaConsumer

    from schemas.topics import EVENT_TOPICS

    result = run_cli(
        "simulate",
        "--events",
        "300",
        "--seed",
        "9",
        "--rate",
        "2000",
        "--start",
        START,
        env=hub_env(broker, tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    consumer = KafkaConsumer(
        *EVENT_TOPICS,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    values = [message.value for message in consumer]
    consumer.close()
    payload = b"".join(values)
    generated = generate_city(9, parse_time(START, "start"), 7, 300)
    raw_ids = {e["citizen_id"] for e in generated}
    assert payload, "nothing was published"
    decoded = [event for value in values for event in EventCodec().decode_message(value)]
    agency_events = sorted(e["event_id"] for e in decoded if e["event_type"] != "ConnectorHeartbeat")
    assert agency_events == sorted(e["event_id"] for e in generated)  # every message decodes; nothing lost
    assert not [i for i in raw_ids if i.encode() in payload]
    assert not [i for i in raw_ids if i in result.stdout + result.stderr]


def test_generated_csv_exports_import_to_exactly_the_truth(broker, workers, tmp_path):
    env = hub_env(broker, tmp_path)
    exported = run_cli(
        "simulate",
        "--events",
        "800",
        "--seed",
        "5",
        "--days",
        "2",
        "--start",
        START,
        "--csv",
        str(tmp_path / "exports"),
        env=env,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    for path in sorted((tmp_path / "exports").glob("*.csv")):
        agency = path.stem.upper()
        imported = run_cli("import", str(path), "--agency", agency, "--no-progress", env=env)
        assert imported.returncode == 0, imported.stderr[-3000:]
    truth = expected_kpis(generate_city(5, parse_time(START, "start"), 2, 800))
    worker = workers()
    expected = {name: truth[name] for name in EXACT_KPIS}
    wait_for(
        lambda: {n: worker.kpis()[n] for n in EXACT_KPIS} == expected,
        180,
        what=f"the imported city to reach the truth {expected}",
    )
