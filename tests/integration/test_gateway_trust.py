"""No replay and no ID numbers through the real gateway process, counted by a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.gateway import signature_headers
from hubbase.broker import free_port, stop_process
from schemas.contracts import SOURCE_OF_EVENT
from schemas.registry import default_registry
from schemas.topics import ALL_TOPICS
from tests.integration.test_gateway import post, topic_messages
from tests.integration.test_trust import read_all
from tests.support import ROOT, hub_env, wait_for
from tests.trust_samples import RAW_ID, WARD, ids_in, text_has_id

pytestmark = pytest.mark.integration

LABOUR_SECRET = "labour-secret-0123456789"
TOKENS = {a: f"{a.lower()}-token-0123456789" for a in ("POLICE", "SOCIAL_INSURANCE", "HEALTH", "JUSTICE", "PORTAL")}
CREDENTIALS = {**{a: {"token": t} for a, t in TOKENS.items()}, "LABOUR": {"secret": LABOUR_SECRET}}
WINDOW_S = 30


class GatewayProcess:
    def __init__(self, broker: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = hub_env(broker, tmp_path, LIENTHONG_GATEWAY_PORT=str(self.port),
                           LIENTHONG_GATEWAY_CREDENTIALS=json.dumps(CREDENTIALS),
                           LIENTHONG_GATEWAY_REPLAY_WINDOW=str(WINDOW_S))
        self.log_path = tmp_path / f"gateway-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "lienthong", "gateway"], env=self.env, cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: urllib.request.urlopen(f"{self.url}/healthz", timeout=2).status == 200, 60, what="the gateway")

    def stop(self) -> None:
        stop_process(self.process, 30)


@pytest.fixture
def gateways(broker: str, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.stop()


def welfare_payment() -> dict[str, Any]:
    return {"event_type": "WelfarePaid", "occurred_at": "2024-06-01T09:30:00+07:00", "ward_code": WARD,
            "citizen_id": "079204001234", "channel": "BANK_ACCOUNT", "amount_vnd": 1_500_000}


def test_a_captured_welfare_payment_replayed_counts_once(broker, tmp_path, workers, gateways):
    worker = workers()
    gateways.append(GatewayProcess(broker, tmp_path))
    body = json.dumps(welfare_payment()).encode()
    captured = signature_headers("LABOUR", LABOUR_SECRET, body)
    status, first = post(gateways[0].url, body, captured)
    assert status == 202, first
    status, replayed = post(gateways[0].url, body, captured)
    assert (status, replayed["reason"]) == (401, "X-Lienthong-Nonce was already used: a replayed request is refused")

    stale = signature_headers("LABOUR", LABOUR_SECRET, body, now=time.time() - WINDOW_S - 30)
    status, refused = post(gateways[0].url, body, stale)
    assert status == 401 and "from the gateway's clock" in refused["reason"]

    # a gateway restarted inside the window has forgotten the nonce: the capture goes in
    # again, but with the same content-derived event id, so the worker counts it once
    gateways[0].stop()
    gateways.append(GatewayProcess(broker, tmp_path))
    status, again = post(gateways[1].url, body, captured)
    assert (status, again["event_ids"]) == (202, first["event_ids"])

    kpis = wait_for(lambda: (k := worker.kpis())["events_duplicate"] >= 1 and k, 60, what="the replay seen")
    assert kpis["welfare_payments"] == 1


def test_a_blind_retry_of_a_bearer_request_without_event_id_counts_once(broker, tmp_path, workers, gateways):
    worker = workers()
    gateways.append(GatewayProcess(broker, tmp_path))
    card = {"event_type": "IdCardIssued", "occurred_at": "2024-06-01T09:30:00+07:00", "ward_code": WARD,
            "citizen_id": "079204001235", "card_kind": "CCCD_CHIP"}
    other = {**card, "citizen_id": "079204001236"}
    auth = {"Authorization": f"Bearer {TOKENS['POLICE']}"}
    answers = [post(gateways[0].url, event, auth) for event in (card, card, other)]
    assert [status for status, _ in answers] == [202, 202, 202]
    assert answers[0][1] == answers[1][1] != answers[2][1]
    # all three messages handled (each is a group of its own: a poll may land between them),
    # then the retry is the one duplicate and two cards count
    kpis = wait_for(lambda: (k := worker.kpis())["events_duplicate"] + k["id_cards_issued"] >= 3 and k, 60,
                    what="all three requests' events handled")
    assert (kpis["events_duplicate"], kpis["id_cards_issued"]) == (1, 2)


def planted_json() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each event type as agency JSON, with the raw ID in each field in turn (and as citizen_id)."""
    for event_type in sorted(default_registry().event_types):
        payload = {f["name"]: "text" for f in default_registry().latest(event_type).schema["fields"]
                   if f["name"] != "envelope"}
        base = {"event_type": event_type, "occurred_at": "2024-06-01T09:30:00+07:00", "ward_code": WARD,
                "citizen_id": RAW_ID, "correlation_id": "HS-1", **payload}
        for name in [n for n in base if n != "event_type"] + ["event_id", "citizen_ref", "source"]:
            for text in (RAW_ID, f"ref {RAW_ID} at counter"):
                yield SOURCE_OF_EVENT[event_type] or "POLICE", {**base, name: text}


def test_raw_ids_in_every_field_of_agency_json_reach_no_topic_answer_or_log(broker, tmp_path, workers, gateways):
    worker = workers()
    gateways.append(GatewayProcess(broker, tmp_path))
    answers = []
    for agency, event in planted_json():
        body = json.dumps(event).encode()
        headers = (signature_headers(agency, LABOUR_SECRET, body) if agency == "LABOUR"
                   else {"Authorization": f"Bearer {TOKENS[agency]}"})
        answers.append(post(gateways[0].url, body, headers))
    assert {status for status, _ in answers} <= {202, 400, 403}
    for _, answer in answers:
        assert not text_has_id(json.dumps(answer)), answer
    time.sleep(2)  # let the worker take what went in
    for topic in ALL_TOPICS:
        for value in topic_messages(broker, topic):
            assert not ids_in(value), (topic, value)
    for message in read_all(broker, "lienthong.deadletter"):
        assert not any(ids_in(v) for _, v in message.headers)
    gateways[0].stop()
    assert not ids_in(gateways[0].log_path.read_bytes())
    assert not ids_in(worker.log_path.read_bytes())
