"""A worker that cannot do its job says so and ends; one that can always resumes (issue 11).

Real worker processes on the real embedded broker: topics auto-created with the
wrong partition count, crashes in the agent and in the Faust app, the JSON-only
log stream, /healthz telling a stuck agent or an endless recovery, alerts of a
message whose delta outlived its worker, and recovery reading a changelog to its
real end. (Kills at random points of a backlog: ``test_exactness.py``.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from hubbase.broker import EmbeddedBroker
from hubbase.topic_admin import topic_partitions
from schemas.topics import ALL_TOPICS
from streams.exits import EXIT_CRASHED, EXIT_TOPICS
from tests.integration.test_web_api import import_id_cards
from tests.support import WorkerProcess, hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bare_broker() -> Iterator[str]:
    """An embedded broker with no hub topics yet (as a production cluster before the hub)."""
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


def log_lines(worker: WorkerProcess) -> list[str]:
    return [line for line in worker.log_path.read_text().splitlines() if line.strip()]


def exit_code(worker: WorkerProcess, timeout: float) -> int:
    assert worker.process is not None
    return worker.process.wait(timeout)


def test_the_embedded_broker_creates_every_hub_topic_with_the_configured_count(broker):
    counts = topic_partitions(broker)
    assert set(counts) == set(ALL_TOPICS) and set(counts.values()) == {8}


def test_a_worker_stops_with_one_clear_line_when_a_topic_was_auto_created_first(bare_broker, tmp_path):
    producer = KafkaProducer(bootstrap_servers=bare_broker)
    producer.send("lienthong.identity", b"an agency that came first").get(10)
    producer.close()
    auto_created = topic_partitions(bare_broker)["lienthong.identity"]
    assert auto_created != 8, "the broker's default count must differ for this test to mean anything"

    worker = WorkerProcess(bare_broker, tmp_path, "cold").start(wait=False)
    try:
        assert exit_code(worker, 60) == EXIT_TOPICS
    finally:
        worker.kill()
    lines = log_lines(worker)
    problems = [json.loads(line) for line in lines if "topic_partitions_mismatch" in line]
    assert len(problems) == 1, lines
    error = problems[0]["error"]
    assert f"lienthong.identity has {auto_created} partitions" in error
    assert "needs 8" in error and "kafka-topics.sh --delete" in error
    assert not any("Traceback" in line for line in lines)

    status = run_cli("status", "--url", "http://127.0.0.1:9", env=hub_env(bare_broker, tmp_path))
    assert re.search(rf"lienthong\.identity\s+{auto_created} partitions\s+WRONG: expected 8", status.stdout)
    assert f"problem: lienthong.identity has {auto_created} partitions" in status.stdout


def test_a_worker_whose_agent_crashes_exits_non_zero_within_seconds(broker, workers, tmp_path):
    worker = workers(name="faulty", LIENTHONG_FAULT="agent_error@2")
    import_id_cards(broker, tmp_path, 3000)
    # before, the process logged the crash and lived on doing nothing: this wait timed out
    assert exit_code(worker, 60) == EXIT_CRASHED
    crash = [json.loads(line) for line in log_lines(worker) if "agent_crashed" in line]
    assert len(crash) == 1 and "injected agent error at message 2" in crash[0]["error"]


def test_every_line_a_worker_writes_is_json_through_a_takeover(broker, workers, tmp_path):
    # a peer dies mid-import: rebalancing makes Faust, mode and aiokafka log their warnings
    survivor = workers(name="survivor")
    peer = workers(name="peer")
    import_id_cards(broker, tmp_path, 2000)
    peer.kill()
    wait_for(lambda: survivor.kpis()["id_cards_issued"] == 2000, 120, what="the survivor to count everything")
    survivor.stop()
    lines = log_lines(survivor)
    loggers = set()
    for line in lines:
        record = json.loads(line)  # raises on any line that is not JSON
        assert "event" in record and "level" in record
        loggers.add(record.get("logger", ""))
    assert any(name.split(".")[0] in {"faust", "mode", "aiokafka", "kafka"} for name in loggers), loggers


def test_a_flag_whose_delta_survived_a_crash_is_announced_after_the_restart(broker, workers, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer

    from schemas.topics import DEADLETTER
    from tests.integration.test_flags import alerts

    # the worker dies right after the delta of its first message is durable, before its sends
    worker = workers(name="fragile", LIENTHONG_FAULT="exit_after_delta@1")
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    producer.send("lienthong.identity", key=b"k", value=b"\x00not a contract").get(10)
    producer.close()
    assert exit_code(worker, 60) == 1
    assert any("fault_injected" in line for line in log_lines(worker))
    assert alerts(broker) == [], "the crash came before the alert was sent"

    restarted = workers(name="fragile")  # the replay is skipped by the fence...
    wait_for(lambda: healthz(restarted)[1]["messages"] >= 1, 120, what="the replay")
    assert restarted.kpis()["events_dead_lettered"] == 1, "...and counted once"
    # ...yet its flag and its dead letter come out: consumers dedupe by flag_id + status
    # (at least once: a replay may be re-read, so compare what a consumer keeps after deduping)
    flags = wait_for(lambda: alerts(broker), 120, what="the re-announced flag")
    assert {(f["flag_id"], f["type"], f["status"]) for f in flags} == {
        (flags[0]["flag_id"], "CONTRACT_VIOLATION", "OPEN")}
    consumer = KafkaConsumer(DEADLETTER, bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    dead = list(consumer)
    consumer.close()
    assert dead and {(d.value, tuple(d.headers)) for d in dead} == {(b"\x00not a contract", tuple(dead[0].headers))}
    assert ("lienthong.source.offset", b"0") in dead[0].headers


def healthz(worker: WorkerProcess) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{worker.url}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_worker_stuck_with_lag_is_unhealthy_on_healthz_metrics_and_status(broker, workers, tmp_path):
    from tests.integration.test_metrics import scrape, value

    worker = workers(name="stuck", LIENTHONG_FAULT="stall@1", LIENTHONG_HEALTH_STALL_S="3")
    assert healthz(worker)[0] == 200
    import_id_cards(broker, tmp_path, 3000)  # the agent blocks on the first message; the rest waits
    status, body = wait_for(lambda: (h := healthz(worker))[0] == 503 and h, 90, what="healthz 503")
    assert body["status"] == "unhealthy"
    assert any("messages waiting in owned partitions and no progress for" in p for p in body["problems"])
    samples = scrape(worker.url)
    assert value(samples, "lienthong_worker_healthy") == 0
    assert value(samples, "lienthong_worker_problem", kind="stalled") == 1
    result = run_cli("status", "--url", worker.url, env=hub_env(broker, tmp_path))
    assert "Health: UNHEALTHY:" in result.stdout and "no progress for" in result.stdout


def test_a_worker_whose_recovery_never_finishes_is_unhealthy(broker, workers):
    worker = workers(name="slow", wait=False, LIENTHONG_FAULT="recovery_hang@0", LIENTHONG_HEALTH_RECOVERY_S="3")
    status, body = wait_for(lambda: (h := healthz(worker))[0] == 503 and h, 90, what="healthz 503")
    assert any(p.startswith("recovery not finished after") for p in body["problems"]), body


def test_a_healthy_worker_says_ok_everywhere(broker, workers, tmp_path):
    from tests.integration.test_metrics import scrape, value

    worker = workers(name="fine", LIENTHONG_HEALTH_STALL_S="3")
    import_id_cards(broker, tmp_path, 500)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 500, 60, what="the import counted")
    assert healthz(worker)[0] == 200 and healthz(worker)[1]["problems"] == []
    assert value(scrape(worker.url), "lienthong_worker_healthy") == 1
    assert "Health: ok" in run_cli("status", "--url", worker.url, env=hub_env(broker, tmp_path)).stdout


def test_recovery_reads_a_changelog_to_the_end_a_fetch_sees_even_when_the_broker_reports_less(broker):
    import asyncio
    import random

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from faust.types import TP
    from kafka.admin import KafkaAdminClient, NewTopic

    from streams.faust_fixes import read_to_end

    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic("deltas-like", 8, 1)])
    admin.close()

    async def run() -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker, max_request_size=16 * 1024 * 1024)
        await producer.start()
        rng = random.Random(1)  # small and ~200 KB records, as deltas of full batches are
        sent = [await producer.send("deltas-like", b"x" * rng.choice([300, 5000, 200_000]), partition=i % 8)
                for i in range(400)]
        await asyncio.gather(*sent)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker)
        await consumer.start()
        tps = [TopicPartition("deltas-like", p) for p in range(8)]
        reported = {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
        await consumer.stop()
        read = await read_to_end(broker, {TP("deltas-like", p): end for p, end in reported.items()})
        return reported, {tp.partition: end for tp, end in read.items()}, {p: 50 for p in range(8)}

    reported, read, truth = asyncio.run(run())
    assert read == truth, f"reported by the broker: {reported}"


def test_a_worker_whose_faust_app_crashes_exits_non_zero_within_seconds(broker, workers):
    worker = workers(name="crashing", wait=False, LIENTHONG_FAULT="app_crash@0")
    # before, mode logged "We experienced a crash!" and the process lived on: this wait timed out
    assert exit_code(worker, 90) == EXIT_CRASHED
    crash = [json.loads(line) for line in log_lines(worker) if "worker_crashed" in line]
    assert len(crash) == 1 and "injected crash of the Faust app" in crash[0]["reason"]
