"""One protocol for everything that reacts to an event: counting, liveness and flag rules alike.

The example rule below is what a contributor writes to add a flag: one class,
registered by passing it with the default rules. It flags an eID activated with
no ID card seen for the citizen within a day of event time, using its own store
and an event-time timer.
"""

from __future__ import annotations

import orjson

from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from schemas.wards import ward_codes
from streams.counting import CHAINS, DOSSIERS, Counting
from streams.flags import FLAG_TYPES, default_rules
from streams.flags.records import FLAGS, flag_id, make_flag, reconcile
from streams.liveness import AgencyLiveness, agency_liveness
from streams.processor import Processor, core_reactions
from streams.reaction import BaseReaction, Event
from streams.scorecard import ScorecardCounting
from streams.state import Change, Delta, PartitionState
from streams.stores import LIVENESS, META, PENDING, StoreName
from streams.testing import Feed
from streams.timers import Timers

CODEC = EventCodec()
START = 1_717_200_000_000  # 2024-06-01 UTC
DAY = 86_400_000
WARD = min(ward_codes())

#: The example rule's own store: citizens with an eID waiting for their card.
WAITING = StoreName("eid-waiting")


class EIdWithoutCardRule(BaseReaction):
    """EID_WITHOUT_CARD: an eID activated for a citizen whose ID card was not seen within a day."""

    event_types = frozenset({"IdCardIssued", "EIdActivated"})
    stores = (WAITING, FLAGS, PENDING)
    flag_types = ("EID_WITHOUT_CARD",)

    def __init__(self) -> None:
        self.timers = Timers("EID_WITHOUT_CARD")

    def on_event(self, event: Event, change: Change) -> None:
        ref = event["citizen_ref"]
        if event["event_type"] == "IdCardIssued":
            change.set(WAITING, ref, {"card": True})
            return
        if not (change.get(WAITING, ref) or {}).get("card"):
            change.set(WAITING, ref, {"eid": event["occurred_at"], "ward": event["ward_code"]})
            self.timers.notify_at(change, event["occurred_at"] + DAY, ref, change.watermark)

    def on_watermark(self, watermark: int, change: Change) -> None:
        for ref, waiting in self.timers.due_records(change, watermark, WAITING):
            if not waiting.get("card"):
                reconcile(change, flag_id("EID_WITHOUT_CARD", ref), make_flag(
                    "EID_WITHOUT_CARD", status="OPEN", agency="POLICE", ward=waiting["ward"], subject=ref,
                    opened_at=waiting["eid"] + DAY))


def event(kind: str, ref: str, at: int, n: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": f"00000000-0000-0000-0000-{n:012d}", "event_type": kind, "occurred_at": at,
        "source": "POLICE", "ward_code": WARD, "citizen_ref": ref, "correlation_id": None,
    }
    if kind == "IdCardIssued":
        base.update(card_kind="CCCD_CHIP")
    if kind == "EIdActivated":
        base.update(level="LEVEL_2")
    base.update(fields)
    return base


def test_the_hub_counts_and_tracks_liveness_through_the_same_protocol_as_the_rules():
    processor = Processor(CODEC, [])
    assert [type(r) for r in processor.reactions] == [Counting, AgencyLiveness, ScorecardCounting]
    assert [type(r) for r in core_reactions()] == [Counting, AgencyLiveness, ScorecardCounting]
    processor.process(IDENTITY, 0, 0, CODEC.encode(event("IdCardIssued", "a" * 64, START, 1)), START, now_ms=START)
    state = processor.state(0)
    assert state.counters[f"id_cards_issued|{WARD}|2024-06-01"] == 1
    assert agency_liveness(state) == {"POLICE": {"last_seen_ms": START, "events": 1}}


def test_a_new_flag_rule_is_one_class_registered_beside_the_others():
    feed = Feed(rules=[*default_rules(), EIdWithoutCardRule()])
    feed.send(event("EIdActivated", "b" * 64, START, 1),
              event("IdCardIssued", "c" * 64, START + 1000, 2),
              event("EIdActivated", "c" * 64, START + 2000, 3),
              event("IdCardIssued", "d" * 64, START + 2 * DAY, 4))  # moves event time past the deadline
    flag = feed.only("EID_WITHOUT_CARD")
    assert flag["subject"] == "b" * 64
    assert WAITING in feed.processor.stores
    assert [a["type"] for a in feed.alerts if a["type"] == "EID_WITHOUT_CARD"] == ["EID_WITHOUT_CARD"]


def test_a_flag_of_a_type_the_flag_schema_never_listed_is_published_without_a_new_schema_version():
    flag = make_flag("EID_WITHOUT_CARD", status="OPEN", agency="POLICE", ward=WARD, subject="b" * 64,
                     opened_at=START)
    schema, record = CODEC.decode_record(CODEC.encode_record("Flag", flag))
    assert (schema.name, record["type"]) == ("Flag", "EID_WITHOUT_CARD")
    known = make_flag("SYNC_MISSING", status="OPEN", agency="POLICE", ward="", subject="x", opened_at=START)
    assert CODEC.decode_record(CODEC.encode_record("Flag", known))[1]["type"] == "SYNC_MISSING"


def test_the_flag_types_are_those_the_registered_rules_declare():
    assert "EID_WITHOUT_CARD" not in FLAG_TYPES  # the example is not registered in the hub
    assert {"SYNC_MISSING", "CHAIN_STALLED", "AGENCY_SILENT"} <= set(FLAG_TYPES)


def test_a_processor_opens_exactly_the_stores_its_reactions_declare():
    stores = set(Processor(CODEC).stores)
    declared = {store for reaction in Processor(CODEC).reactions for store in reaction.stores}
    assert stores == declared | {META, PENDING}
    assert {DOSSIERS, CHAINS, LIVENESS, FLAGS} <= stores


def test_every_store_a_city_writes_is_declared_by_a_reaction():
    from connectors.sdk import prepare
    from connectors.simulator import generate_city
    from schemas.pseudonym import Pseudonymiser

    pseudonymiser = Pseudonymiser(b"k" * 32)
    events = [dict(prepare(raw, pseudonymiser)) for raw in generate_city(seed=4, start_ms=START, days=30,
                                                                          events=6000)]
    feed = Feed(now_ms=START + 31 * DAY)
    written: set[str] = set()
    for e in events:
        feed.send(e)
    for delta_store in feed.processor.state(0).stores:
        if len(feed.processor.state(0).stores[delta_store]):
            written.add(delta_store)
    assert written <= set(feed.processor.stores)
    assert {"tallies", "citizens", "flags", "liveness"} <= written


def test_liveness_a_delta_kept_in_meta_before_it_had_a_store_folds_into_the_liveness_store():
    legacy = {"s": 0, "t": IDENTITY, "o": 0, "i": {}, "n": {},
              "p": {"meta": {"watermark": START, "agency:POLICE": {"last_seen_ms": START, "events": 3}}}}
    state = PartitionState.fold(0, [Delta.decode(orjson.dumps(legacy))])
    assert agency_liveness(state) == {"POLICE": {"last_seen_ms": START, "events": 3}}
    assert state.stores["meta"] == {"watermark": START}


def test_liveness_an_older_disk_store_with_liveness_in_meta_is_moved_on_open(tmp_path):
    import rocksdict

    from streams.store import DiskPartitionState, PartitionDB

    db = PartitionDB(tmp_path / "p0")
    batch = rocksdict.WriteBatch(raw_mode=True)
    batch.put(b"s|meta|agency:HEALTH", orjson.dumps({"last_seen_ms": START, "events": 7}))
    batch.put(b"f|" + IDENTITY.encode(), b"4")
    db.write(batch)
    state = DiskPartitionState(0, db, stores=(LIVENESS,))
    assert agency_liveness(state) == {"HEALTH": {"last_seen_ms": START, "events": 7}}
    assert "agency:HEALTH" not in state.stores["meta"]
    db.close()
    reopened = DiskPartitionState(0, PartitionDB(tmp_path / "p0"), stores=(LIVENESS,))
    assert agency_liveness(reopened) == {"HEALTH": {"last_seen_ms": START, "events": 7}}
