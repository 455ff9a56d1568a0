"""One table of contracts: every event type declared once, and the declaration agrees with the code."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from connectors.simulator import generate_city
from schemas.contracts import (
    CONTRACT_OF,
    CONTRACTS,
    HEARTBEAT,
    LIVENESS_SIGNALS,
    NEEDS_CORRELATION,
    SOURCE_OF_EVENT,
    TOPIC_OF_EVENT,
    WALL_CLOCK_EVENTS,
    EventContract,
    partition_key,
)
from schemas.registry import default_registry
from schemas.topics import EVENT_TOPICS
from schemas.vocabulary import AGENCIES, FLAG_STATUSES, LISTED_FLAG_STATUSES
from streams.flags import FLAG_TYPES

NOT_EVENTS = {"Envelope", "EventBatch", "Flag"}
START = 1_717_200_000_000  # 2024-06-01


def test_every_event_schema_has_exactly_one_contract_and_every_contract_a_schema():
    schemas = set(default_registry().event_types) - NOT_EVENTS
    assert [c.event_type for c in CONTRACTS] == list(dict.fromkeys(c.event_type for c in CONTRACTS))
    assert set(CONTRACT_OF) == schemas


def test_every_event_topic_carries_a_declared_event_and_no_event_travels_elsewhere():
    assert set(TOPIC_OF_EVENT.values()) == set(EVENT_TOPICS)


def test_the_lookups_are_views_of_the_table():
    assert TOPIC_OF_EVENT == {c.event_type: c.topic for c in CONTRACTS}
    assert SOURCE_OF_EVENT["IdCardIssued"] == "POLICE"
    assert SOURCE_OF_EVENT[HEARTBEAT] is None
    assert NEEDS_CORRELATION == {"BirthRegistered", "DeathRegistered", "ProcedureSubmitted", "ProcedureCompleted"}


def test_only_the_heartbeat_carries_wall_clock_time():
    assert WALL_CLOCK_EVENTS == {HEARTBEAT}


def test_only_the_heartbeat_is_a_liveness_signal_and_it_adds_only_its_own_counter():
    from streams.counting import count_event
    from streams.state import Change, PartitionState

    assert LIVENESS_SIGNALS == {HEARTBEAT}
    change = Change(PartitionState(0), "lienthong.heartbeats", 0)
    count_event({"event_type": HEARTBEAT, "ward_code": "", "source": "POLICE", "occurred_at": START,
                 "connector": "pol-1", "sent_total": 3}, change)
    assert change.inc == {"heartbeats||2024-06-01": 1}


def test_no_python_module_spells_the_heartbeat_or_the_id_number_pattern_itself():
    """Each vocabulary is declared once: the contract table and schemas/personal_ids.py."""
    root = Path(__file__).resolve().parents[2]
    copies = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("connectors", "streams", "schemas", "hubbase", "lienthong")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name not in {"contracts.py", "personal_ids.py"}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if '"ConnectorHeartbeat"' in line or re.search(r"\\d\{12\}|\[0-9\]\{12\}", line)
    ]
    assert copies == []


def test_a_contract_names_a_known_agency():
    with pytest.raises(ValueError, match="unknown agency"):
        EventContract("Nope", EVENT_TOPICS[0], "MINISTRY_OF_MAGIC")
    assert {c.agency for c in CONTRACTS} - {None} <= set(AGENCIES)


def test_an_event_is_keyed_by_its_dossier_then_its_citizen_then_its_connector():
    assert partition_key({"event_type": "BirthRegistered", "correlation_id": "B-1", "citizen_ref": "c"}) == b"B-1"
    assert partition_key({"event_type": "IdCardIssued", "correlation_id": None, "citizen_ref": "c"}) == b"c"
    assert partition_key({"event_type": HEARTBEAT, "citizen_ref": "", "connector": "pol-1",
                          "source": "POLICE"}) == b"pol-1"
    assert partition_key({"event_type": "Unknown", "source": "POLICE"}) == b"POLICE"


def _declared(event_type: str) -> set[str]:
    return {counter.metric for counter in CONTRACT_OF[event_type].counters}


def test_counting_adds_only_counters_its_contract_declares():
    from streams.counting import metrics_of

    for event in itertools.islice(generate_city(seed=3, start_ms=START, days=20, events=20_000), 20_000):
        added = {name.split(":")[0] for name, _ in metrics_of(event)}
        assert added <= _declared(event["event_type"]), event["event_type"]


@pytest.mark.parametrize(("event", "expected"), [
    ({"event_type": "HealthInsuranceSynced", "outcome": "SYNCED"}, [("insurance_synced", 1)]),
    ({"event_type": "HealthInsuranceSynced", "outcome": "FAILED"}, [("insurance_sync_failed", 1)]),
    ({"event_type": "EIdActivated", "level": "LEVEL_2"}, [("eid_activated", 1), ("eid_level2_activated", 1)]),
    ({"event_type": "ResidenceRegistered", "kind": "PERMANENT", "channel": "ONLINE"},
     [("residence_registrations:PERMANENT", 1), ("residence_online:PERMANENT", 1)]),
    ({"event_type": "ResidenceRegistered", "kind": "TEMPORARY", "channel": "COUNTER"},
     [("residence_registrations:TEMPORARY", 1)]),
    ({"event_type": "MedicalCheckIn", "insurance_lookup": "ERROR"}, [("checkins_by_id_card", 1)]),
    ({"event_type": "WelfarePaid", "channel": "CASH", "amount_vnd": 1_500_000},
     [("welfare_payments", 1), ("welfare_amount_vnd", 1_500_000)]),
    ({"event_type": "BirthRegistered"}, []),
])
def test_a_contract_counter_adds_by_label_condition_or_amount(event: dict[str, object], expected: list[tuple[str, int]]):
    from streams.counting import metrics_of

    assert metrics_of(event) == expected


def test_flag_statuses_come_from_the_flag_schema_and_agree_with_the_rules():
    from streams.flags import FLAG_STATUSES as RULE_STATUSES

    assert FLAG_STATUSES == RULE_STATUSES == ("OPEN", "RESOLVED", "WITHDRAWN")
    assert LISTED_FLAG_STATUSES == ("OPEN", "RESOLVED")


def test_flag_types_are_the_types_the_registered_reactions_declare():
    from streams.flags import default_rules
    from streams.silence import SilenceMonitor

    declared = {t for rule in default_rules() for t in rule.flag_types} | set(SilenceMonitor.flag_types)
    assert set(FLAG_TYPES) == declared
    assert len(FLAG_TYPES) == len(declared)


def _js_keys(name: str) -> list[str]:
    """The keys of ``const <name> = {...}`` in the dashboard's script."""
    script = (Path(__file__).resolve().parents[2] / "streams" / "static" / "dashboard.js").read_text()
    body = re.search(rf"const {name} = \{{(.*?)\n?\}};", script, re.S)
    assert body is not None, name
    return re.findall(r"\b([A-Z][A-Z_]+):", body.group(1))


@pytest.mark.parametrize(("name", "vocabulary"), [
    ("AGENCY_COLORS", AGENCIES), ("AGENCY_LABELS", AGENCIES),
    ("FLAG_TEXT", FLAG_TYPES), ("FLAG_STATUS_VI", FLAG_STATUSES),
])
def test_the_dashboard_labels_every_word_of_the_vocabulary_and_no_other(name: str, vocabulary: tuple[str, ...]):
    assert sorted(_js_keys(name)) == sorted(vocabulary)
