"""The worker's HTTP API against its own OpenAPI document, filters and live stream."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from schemas.wards import city_wards
from tests.integration.test_walking_skeleton import write_id_cards
from tests.support import hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def import_id_cards(broker: str, tmp_path: Path, count: int, name: str = "cards.csv") -> None:
    csv_path = tmp_path / name
    write_id_cards(csv_path, count)
    result = run_cli("import", str(csv_path), "--agency", "POLICE", "--no-progress", env=hub_env(broker, tmp_path))
    assert result.returncode == 0, result.stderr


def send_garbage(broker: str, count: int) -> None:
    """Raw bytes no contract decodes, straight to the identity topic (as a broken agency would)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker)
    for i in range(count):
        producer.send("lienthong.identity", key=f"garbage-{i}".encode(), value=b"\x00not avro at all %d" % i)
    producer.flush()
    producer.close()


def refused(url: str) -> tuple[int, Any]:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    raise AssertionError(f"{url} was accepted")


def test_every_endpoint_conforms_to_its_openapi_description(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 40)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 40, 60, what="40 ID cards")
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{worker.url}/openapi.json", "--checks", "all",
         "--max-examples", "12", "--generation-deterministic", "--workers", "1",
         "--exclude-path", "/api/stream", "--report-dir", str(tmp_path / "schemathesis")],
        check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_a_day_that_is_not_a_date_is_refused_naming_the_field(broker, workers):
    worker = workers()
    status, body = refused(f"{worker.url}/api/kpis?day=2024-6-1")
    assert status == 400
    assert body["field"] == "day" and body["error"] and body["reason"]


def test_an_unknown_ward_is_refused_naming_the_field(broker, workers):
    worker = workers()
    status, body = refused(f"{worker.url}/api/counters?ward=00001")
    assert status == 400
    assert body["field"] == "ward" and body["error"] and body["reason"]


def test_busiest_wards_come_with_their_official_names(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 40)

    def all_counted() -> dict[str, Any] | None:
        wards = worker.get("/api/wards")
        return wards if sum(row["events"] for row in wards["wards"]) == 40 else None

    body = wait_for(all_counted, 60, what="40 events over the wards")
    assert body["wards_total"] == 4
    names = city_wards()
    assert [row["events"] for row in body["wards"]] == [10, 10, 10, 10]
    assert all(row["name"] == names[row["ward"]] for row in body["wards"])


def read_sse_event(response: http.client.HTTPResponse, wanted: str, give_up_after: int = 40) -> dict[str, Any]:
    """Read server-sent events until one of type ``wanted`` arrives; its data.

    Gives up after ``give_up_after`` other events (a KPIs event comes at least
    every 15 s), so a missing event fails the test instead of hanging it.
    """
    event, seen = "", 0
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            if event == wanted:
                return dict(json.loads(line[len("data: "):]))
            seen += 1
            if seen > give_up_after:
                break
    raise AssertionError(f"no {wanted} event on the stream")


def open_stream(url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    host_port = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=60)
    conn.request("GET", "/api/stream", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    return conn, response


def test_live_stream_pushes_counts_and_kpis_as_events_are_processed(broker, workers, tmp_path):
    worker = workers()
    conn, response = open_stream(worker.url)
    try:
        first = read_sse_event(response, "kpis")
        assert first["kpis"]["id_cards_issued"] == 0
        import_id_cards(broker, tmp_path, 30)
        counts = read_sse_event(response, "counts")
        assert counts["by_agency"].get("POLICE", 0) > 0
        while (kpis := read_sse_event(response, "kpis"))["kpis"]["id_cards_issued"] < 30:
            pass
        assert kpis["kpis"]["id_cards_issued"] == 30
    finally:
        conn.close()


def test_live_stream_pushes_flags_as_they_open(broker, workers, tmp_path):
    worker = workers()
    conn, response = open_stream(worker.url)
    try:
        read_sse_event(response, "kpis")
        send_garbage(broker, 1)  # a message no contract decodes: CONTRACT_VIOLATION opens
        flag = read_sse_event(response, "flag")
        assert (flag["type"], flag["status"], flag["agency"]) == ("CONTRACT_VIOLATION", "OPEN", "POLICE")
    finally:
        conn.close()


def test_a_closed_stream_gives_its_listener_queue_back(broker, workers):
    worker = workers()
    conn, response = open_stream(worker.url)
    read_sse_event(response, "kpis")
    assert worker.get("/healthz")["stream_listeners"] == 1
    conn.close()
    wait_for(lambda: worker.get("/healthz")["stream_listeners"] == 0, 30, what="the listener to be removed")


def test_agencies_report_every_event_of_the_city_not_one_partition(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 40)
    body = wait_for(lambda: (b := worker.get("/api/agencies"))["agencies"][0]["events"] == 40 and b, 60,
                    what="40 POLICE events")
    assert [row["agency"] for row in body["agencies"]] == ["POLICE"]
