"""The HTTP gateway on a real port, producing to the real broker; topics read back and decoded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from aiohttp import web
from kafka import KafkaConsumer

from connectors.gateway import build_gateway_app, parse_credentials, signature_headers
from hubbase.broker import free_port
from hubbase.settings import Settings
from schemas.codec import EventCodec
from schemas.pseudonym import Pseudonymiser
from schemas.wards import ward_codes
from tests.support import ROOT, hub_env, wait_for

pytestmark = pytest.mark.integration

KEY = "test-key-0123456789abcdef"
POLICE_TOKEN = "police-token-0123456789"
HEALTH_TOKEN = "health-token-0123456789"
JUSTICE_SECRET = "justice-secret-0123456789"
CREDENTIALS = {"POLICE": {"token": POLICE_TOKEN}, "HEALTH": {"token": HEALTH_TOKEN},
               "JUSTICE": {"secret": JUSTICE_SECRET}}
WARD = min(ward_codes())
RAW_ID = "079204001234"


def id_card(citizen_id: str = RAW_ID, **changes: Any) -> dict[str, Any]:
    event = {"event_type": "IdCardIssued", "occurred_at": "2024-06-01T09:30:00+07:00",
             "ward_code": WARD, "citizen_id": citizen_id, "card_kind": "CCCD_CHIP"}
    event.update(changes)
    return event


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/v1/events", data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def as_police() -> dict[str, str]:
    return {"Authorization": f"Bearer {POLICE_TOKEN}"}


def topic_messages(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    try:
        return [m.value for m in consumer]
    finally:
        consumer.close()


def topic_events(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    codec = EventCodec()
    return [event for value in topic_messages(bootstrap, topic) for event in codec.decode_message(value)]


class RunningGateway:
    """The gateway app served by aiohttp on a real port, in a thread with its own loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.ready = threading.Event()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.ready.wait(30), "the gateway did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)


@pytest.fixture
def settings(broker: str, tmp_path: Path) -> Settings:
    return Settings.from_env().with_(broker=broker, pseudonym_key=KEY, data_dir=tmp_path)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[RunningGateway]:
    with RunningGateway(build_gateway_app(settings, parse_credentials(CREDENTIALS))) as running:
        yield running


def test_accepted_event_is_acknowledged_and_decoded_on_the_identity_topic(gateway, broker):
    status, body = post(gateway.url, id_card(), as_police())
    assert status == 202, body
    [event] = topic_events(broker, "lienthong.identity")
    assert event["event_id"] == body["event_ids"][0]
    assert event["source"] == "POLICE"
    assert event["citizen_ref"] == Pseudonymiser(KEY.encode()).ref(RAW_ID)
    assert event["occurred_at"] == 1_717_209_000_000  # 2024-06-01T02:30:00Z


def test_epoch_millisecond_time_and_given_event_id_are_kept(gateway, broker):
    event_id = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
    status, body = post(gateway.url, id_card(occurred_at=1_717_209_000_000, event_id=event_id), as_police())
    assert (status, body) == (202, {"event_ids": [event_id]})
    [event] = topic_events(broker, "lienthong.identity")
    assert (event["event_id"], event["occurred_at"]) == (event_id, 1_717_209_000_000)


def test_invalid_field_is_named_in_a_400(gateway):
    status, body = post(gateway.url, id_card(card_kind="PAPER"), as_police())
    assert status == 400
    assert body["field"] == "card_kind" and "CCCD_CHIP" in body["reason"]


def test_bad_event_in_a_batch_is_named_by_index_and_nothing_is_published(gateway, broker):
    batch = {"events": [id_card(), id_card(occurred_at="yesterday"), id_card()]}
    status, body = post(gateway.url, batch, as_police())
    assert status == 400
    assert (body["index"], body["field"]) == (1, "occurred_at")
    assert topic_messages(broker, "lienthong.identity") == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-valid-token-at-all"}],
                         ids=["missing", "invalid"])
def test_request_without_valid_credentials_gets_401(gateway, headers):
    status, body = post(gateway.url, id_card(), headers)
    assert status == 401 and body["error"] == "unauthorized"


def test_agency_publishing_another_agencys_event_type_gets_403(gateway, broker):
    status, body = post(gateway.url, id_card(), {"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert status == 403
    assert body["field"] == "event_type" and "POLICE" in body["reason"]


def test_agency_claiming_another_source_gets_403(gateway):
    heartbeat = {"event_type": "ConnectorHeartbeat", "source": "POLICE", "occurred_at": "2024-06-01T00:00:00Z",
                 "connector": "his", "sent_total": 0}
    status, body = post(gateway.url, heartbeat, {"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert (status, body["field"]) == (403, "source")


def test_batch_is_accepted_with_every_event_on_the_topic(gateway, broker):
    batch = {"events": [id_card(f"07920400{i:04d}") for i in range(5)]}
    status, body = post(gateway.url, batch, as_police())
    assert status == 202 and len(body["event_ids"]) == 5
    assert sorted(e["event_id"] for e in topic_events(broker, "lienthong.identity")) == sorted(body["event_ids"])


def test_signed_request_is_accepted(gateway, broker):
    birth = {"event_type": "BirthRegistered", "occurred_at": "2024-06-01T08:00:00+07:00", "ward_code": WARD,
             "citizen_id": "079224000001", "correlation_id": "HS-2024-000001"}
    data = json.dumps(birth).encode()
    status, body = post(gateway.url, data, signature_headers("JUSTICE", JUSTICE_SECRET, data))
    assert status == 202, body
    [event] = topic_events(broker, "lienthong.civil-status")
    assert event["event_id"] == body["event_ids"][0]


def test_gateway_beats_only_for_agencies_it_heard_from(settings, broker):
    app = build_gateway_app(settings, parse_credentials(CREDENTIALS), heartbeat_interval=0.3)
    with RunningGateway(app) as running:
        assert post(running.url, id_card(), as_police())[0] == 202
        beats = wait_for(lambda: topic_events(broker, "lienthong.heartbeats"), 30, what="a heartbeat")
    assert {(b["source"], b["connector"]) for b in beats} == {("POLICE", "gateway-police")}
    assert beats[0]["sent_total"] == 1


def test_raw_id_number_reaches_neither_topic_nor_response_nor_log(broker, tmp_path):
    port = free_port()
    env = hub_env(broker, tmp_path, LIENTHONG_GATEWAY_PORT=str(port),
                  LIENTHONG_GATEWAY_CREDENTIALS=json.dumps(CREDENTIALS))
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lienthong", "gateway"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200, 60, what="the gateway")
        accepted = post(url, id_card(), as_police())
        misplaced = post(url, id_card(ward_code=RAW_ID), as_police())  # the number typed in the wrong field
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert accepted[0] == 202 and misplaced[0] == 400
    assert RAW_ID not in json.dumps(misplaced[1])
    assert RAW_ID.encode() not in b"".join(topic_messages(broker, "lienthong.identity"))
    logged = log_path.read_text()
    assert accepted[1]["event_ids"][0] in logged, "the accepted event id should be logged"
    assert RAW_ID not in logged


def test_concurrent_requests_are_each_acknowledged_with_their_own_events(gateway, broker):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(gateway.url, id_card(f"07920400{i:04d}"), as_police()), range(24)))
    assert {status for status, _ in answers} == {202}
    accepted = sorted(body["event_ids"][0] for _, body in answers)
    assert sorted(e["event_id"] for e in topic_events(broker, "lienthong.identity")) == accepted
