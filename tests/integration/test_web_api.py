"""The worker's HTTP API against its own OpenAPI document, filters and live stream."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
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
#: Every time in the API: ISO-8601 UTC with milliseconds.
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


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


def failed_syncs(count: int, wards: list[str]) -> list[dict[str, Any]]:
    """``count`` failed insurance syncs (one SYNC_FAILED flag each), spread over ``wards``."""
    from tests.unit.test_flags import T0, sync

    events = []
    for i in range(count):
        event = sync(T0 + i * 60_000, citizen=i, ok=False)
        event["ward_code"] = wards[i % len(wards)]
        events.append(event)
    return events


def test_flags_come_in_pages_that_give_each_flag_once_in_a_stable_order(broker, workers):
    from tests.integration.test_flags import publish

    worker = workers()
    publish(broker, *failed_syncs(25, sorted(city_wards())[:3]))
    wait_for(lambda: worker.get("/api/flags?limit=1")["total"] == 25, 60, what="25 SYNC_FAILED flags")
    pages, cursor = [], ""
    while True:
        body = worker.get(f"/api/flags?limit=10{cursor}")
        pages.append(body["flags"])
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert [len(p) for p in pages] == [10, 10, 5]
    rows = [f for page in pages for f in page]
    assert len({f["flag_id"] for f in rows}) == 25
    assert [(f["opened_at"], f["flag_id"]) for f in rows] == sorted((f["opened_at"], f["flag_id"]) for f in rows)


def test_flag_times_are_iso_utc_strings_and_rows_carry_the_ward_name(broker, workers):
    from tests.integration.test_flags import publish

    worker = workers()
    publish(broker, *failed_syncs(1, [sorted(city_wards())[0]]))
    body = wait_for(lambda: (b := worker.get("/api/flags"))["flags"] and b, 60, what="one flag")
    flag = body["flags"][0]
    assert flag["opened_at"] == "2024-06-01T00:00:00.000Z"  # T0, like as_of's format
    assert flag["resolved_at"] is None
    assert flag["ward_name"] == city_wards()[flag["ward_code"]]


def test_flags_filter_by_agency_and_ward(broker, workers):
    from tests.integration.test_flags import publish

    worker = workers()
    wards = sorted(city_wards())[:3]
    publish(broker, *failed_syncs(12, wards))
    wait_for(lambda: worker.get("/api/flags?limit=1")["total"] == 12, 60, what="12 flags")
    in_ward = worker.get(f"/api/flags?ward={wards[1]}")
    assert in_ward["total"] == 4 and {f["ward_code"] for f in in_ward["flags"]} == {wards[1]}
    assert worker.get("/api/flags?agency=SOCIAL_INSURANCE")["total"] == 12
    assert worker.get("/api/flags?agency=health")["total"] == 0
    assert worker.get(f"/api/flags?agency=SOCIAL_INSURANCE&ward={wards[2]}&type=SYNC_FAILED")["total"] == 4


def test_a_flag_cursor_or_limit_the_api_cannot_use_is_refused_naming_it(broker, workers):
    worker = workers()
    assert refused(f"{worker.url}/api/flags?cursor=page-2")[1]["field"] == "cursor"
    assert refused(f"{worker.url}/api/flags?limit=0")[1]["field"] == "limit"


def test_rates_with_nothing_to_divide_by_are_null(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 10)
    kpis = wait_for(lambda: (k := worker.kpis())["id_cards_issued"] == 10 and k, 60, what="10 ID cards")
    assert kpis["procedures_on_time_rate"] is None and kpis["welfare_cashless_share"] is None
    assert set(kpis["residence_online_rate"].values()) == {None}


def test_healthz_gives_the_first_and_latest_message_times_in_iso_utc(broker, workers, tmp_path):
    from bench.throughput import epoch_s

    worker = workers()
    assert worker.get("/healthz")["first_message_at"] is None  # nothing processed yet
    import_id_cards(broker, tmp_path, 5)
    health = wait_for(lambda: (h := worker.get("/healthz"))["messages"] and h, 60, what="a message")
    first, last = health["first_message_at"], health["last_message_at"]
    assert re.fullmatch(ISO_MS, first) and re.fullmatch(ISO_MS, last)
    assert epoch_s(first) <= epoch_s(last) <= time.time() + 1
