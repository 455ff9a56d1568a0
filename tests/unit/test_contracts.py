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
from schemas.vocabulary import AGENCIES, FLAG_STATUSES, FLAG_TYPES, LISTED_FLAG_STATUSES

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
    """Declared counter names, ``metric:<field>`` read as the metric's prefix."""
    return {counter.split(":")[0] for counter in CONTRACT_OF[event_type].counters}


def test_every_counter_an_event_adds_is_declared_in_its_contract():
    from streams.counting import _metrics_of

    for event in itertools.islice(generate_city(seed=3, start_ms=START, days=20, events=20_000), 20_000):
        kind = event["event_type"]
        added = {metric.split(":")[0] for metric in _metrics_of(kind, event)}
        assert added <= _declared(kind), kind


def test_every_declared_counter_is_written_by_counting():
    source = (Path(__file__).resolve().parents[2] / "streams" / "counting.py").read_text()
    written = set(re.findall(r'"([a-z_0-9]+)(?::|")', source)) | set(re.findall(r"f\"([a-z_0-9]+):", source))
    for contract in CONTRACTS:
        assert _declared(contract.event_type) <= written, contract.event_type


def test_flag_vocabularies_come_from_the_flag_schema_and_agree_with_the_rules():
    from streams.flags import FLAG_STATUSES as RULE_STATUSES
    from streams.flags import FLAG_TYPES as RULE_TYPES

    assert FLAG_STATUSES == RULE_STATUSES == ("OPEN", "RESOLVED", "WITHDRAWN")
    assert LISTED_FLAG_STATUSES == ("OPEN", "RESOLVED")
    assert FLAG_TYPES == RULE_TYPES


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
