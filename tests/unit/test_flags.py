"""Every event-time flag type, driven through the processor (no broker needed).

Each type has a scenario that must raise it and a near miss that must not; the
SLA types also resolve on late data and are withdrawn when data within the SLA
is consumed after the flag opened. The last tests replay one history in several
cross-topic interleavings and demand the same final flags.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.contracts import SOURCE_OF_EVENT, TOPIC_OF_EVENT
from schemas.wards import ward_codes
from streams.flags import default_rules
from streams.processor import Processor
from streams.testing import DEFAULT_NOW_MS, Feed

CODEC = EventCodec()
WARD = min(ward_codes())
T0 = DEFAULT_NOW_MS  # 2024-06-01T00:00Z: the feed's clock
H = 3_600_000
D = 24 * H


def ref(n: int) -> str:
    return hashlib.sha256(f"citizen-{n}".encode()).hexdigest()


def event(
    event_type: str, at: int, citizen: int = 1, dossier: str | None = None, **payload: Any
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "source": SOURCE_OF_EVENT[event_type] or "POLICE",
        "occurred_at": at,
        "ward_code": WARD,
        "citizen_ref": ref(citizen),
        "correlation_id": dossier,
        **payload,
    }


def card(at: int, citizen: int = 1) -> dict[str, Any]:
    return event("IdCardIssued", at, citizen, card_kind="CCCD_CHIP")


def sync(at: int, citizen: int = 1, ok: bool = True) -> dict[str, Any]:
    return event(
        "HealthInsuranceSynced",
        at,
        citizen,
        outcome="SYNCED" if ok else "FAILED",
        failure_reason=None if ok else "card number mismatch",
    )


def checkin(at: int, citizen: int = 1, found: bool = False) -> dict[str, Any]:
    return event(
        "MedicalCheckIn",
        at,
        citizen,
        facility_code="79001",
        insurance_lookup="FOUND" if found else "NOT_FOUND",
    )


def welfare(at: int, citizen: int = 99) -> dict[str, Any]:
    """An unrelated event whose only job is to move event time forward."""
    return event("WelfarePaid", at, citizen, channel="BANK_ACCOUNT", amount_vnd=1000)


def submitted(at: int, dossier: str, due_at: int) -> dict[str, Any]:
    return event(
        "ProcedureSubmitted",
        at,
        5,
        dossier,
        procedure_code="1.001",
        agency_code="SO_TU_PHAP",
        online_level="FULL",
        due_at=due_at,
    )


def completed(at: int, dossier: str) -> dict[str, Any]:
    return event("ProcedureCompleted", at, 5, dossier, outcome="APPROVED")


def birth_steps(
    start: int, dossier: str, residence_after: int | None, card_after: int | None
) -> list[dict[str, Any]]:
    steps = [event("BirthRegistered", start, 7, dossier)]
    if residence_after is not None:
        steps.append(
            event(
                "ResidenceRegistered",
                start + residence_after,
                7,
                dossier,
                kind="PERMANENT",
                channel="ONLINE",
            )
        )
    if card_after is not None:
        steps.append(
            event(
                "HealthInsuranceCardIssued", start + card_after, 7, dossier, for_child_under_6=True
            )
        )
    return steps


# -- SYNC_FAILED ---------------------------------------------------------------
def test_failed_insurance_sync_opens_sync_failed_for_the_citizen():
    failure = sync(T0, ok=False)
    flag = Feed().send(failure).only("SYNC_FAILED")
    assert (flag["status"], flag["subject"], flag["agency"]) == ("OPEN", ref(1), "SOCIAL_INSURANCE")
    assert flag["evidence"] == [failure["event_id"]] and "card number mismatch" in flag["detail"]


def test_successful_insurance_sync_raises_no_sync_failed():
    assert Feed().send(sync(T0)).of_type("SYNC_FAILED") == []


def test_later_successful_sync_resolves_sync_failed():
    fix = sync(T0 + 5 * H)
    flag = Feed().send(sync(T0, ok=False), fix).only("SYNC_FAILED")
    assert (flag["status"], flag["resolved_at"]) == ("RESOLVED", T0 + 5 * H)
    assert fix["event_id"] in flag["evidence"]


def test_success_older_than_the_failure_does_not_resolve_sync_failed():
    assert Feed().send(sync(T0 + 5 * H, ok=False), sync(T0)).only("SYNC_FAILED")["status"] == "OPEN"


# -- SYNC_MISSING --------------------------------------------------------------
def test_card_without_sync_opens_sync_missing_when_watermark_passes_the_sla():
    issued = card(T0)
    flag = Feed().send(issued, welfare(T0 + 73 * H)).only("SYNC_MISSING")
    assert (flag["status"], flag["opened_at"], flag["evidence"]) == (
        "OPEN",
        T0 + 72 * H,
        [issued["event_id"]],
    )


def test_card_without_sync_is_not_flagged_before_the_sla_passes():
    assert Feed().send(card(T0), welfare(T0 + 71 * H)).of_type("SYNC_MISSING") == []


def test_card_synced_within_the_sla_raises_no_sync_missing():
    assert (
        Feed().send(card(T0), sync(T0 + 71 * H), welfare(T0 + 10 * D)).of_type("SYNC_MISSING") == []
    )


def test_failed_sync_within_the_sla_also_counts_as_a_sync():
    assert (
        Feed().send(card(T0), sync(T0 + H, ok=False), welfare(T0 + 10 * D)).of_type("SYNC_MISSING")
        == []
    )


def test_late_sync_resolves_sync_missing_at_its_event_time():
    feed = Feed().send(card(T0), welfare(T0 + 4 * D), sync(T0 + 5 * D))
    flag = feed.only("SYNC_MISSING")
    assert (flag["status"], flag["resolved_at"]) == ("RESOLVED", T0 + 5 * D)
    assert [a["status"] for a in feed.alerts if a["type"] == "SYNC_MISSING"] == ["OPEN", "RESOLVED"]


def test_sync_within_sla_consumed_after_the_flag_opened_withdraws_it():
    feed = Feed().send(card(T0), welfare(T0 + 4 * D))
    assert feed.only("SYNC_MISSING")["status"] == "OPEN"
    feed.send(sync(T0 + D))
    assert feed.of_type("SYNC_MISSING") == []
    assert [a["status"] for a in feed.alerts if a["type"] == "SYNC_MISSING"] == [
        "OPEN",
        "WITHDRAWN",
    ]


def test_sla_override_changes_the_deadline():
    flag = Feed({"INSURANCE_SYNC": 24}).send(card(T0), welfare(T0 + 25 * H)).only("SYNC_MISSING")
    assert flag["opened_at"] == T0 + 24 * H


# -- INSURANCE_NOT_SHARED ------------------------------------------------------
def test_check_in_not_finding_synced_insurance_opens_insurance_not_shared():
    visit = checkin(T0 + 2 * D)
    flag = Feed().send(card(T0), sync(T0 + H), visit).only("INSURANCE_NOT_SHARED")
    assert (flag["status"], flag["opened_at"], flag["subject"]) == ("OPEN", T0 + 2 * D, ref(1))
    assert visit["event_id"] in flag["evidence"]


def test_check_in_without_an_id_card_raises_no_insurance_not_shared():
    assert Feed().send(sync(T0 + H), checkin(T0 + 2 * D)).of_type("INSURANCE_NOT_SHARED") == []


def test_check_in_before_the_insurance_was_synced_raises_no_insurance_not_shared():
    assert (
        Feed().send(card(T0), checkin(T0 + H), sync(T0 + D)).of_type("INSURANCE_NOT_SHARED") == []
    )


def test_later_check_in_that_finds_insurance_resolves_insurance_not_shared():
    flag = (
        Feed()
        .send(card(T0), sync(T0 + H), checkin(T0 + 2 * D), checkin(T0 + 3 * D, found=True))
        .only("INSURANCE_NOT_SHARED")
    )
    assert (flag["status"], flag["resolved_at"]) == ("RESOLVED", T0 + 3 * D)


def test_card_consumed_after_the_check_in_still_raises_insurance_not_shared():
    assert (
        Feed()
        .send(checkin(T0 + 2 * D), sync(T0 + H), card(T0))
        .only("INSURANCE_NOT_SHARED")["status"]
        == "OPEN"
    )


# -- CHAIN_STALLED -------------------------------------------------------------
def test_birth_chain_missing_its_insurance_card_past_the_sla_is_stalled():
    feed = Feed().send(
        *birth_steps(T0, "B-1", residence_after=2 * D, card_after=None), welfare(T0 + 16 * D)
    )
    flag = feed.only("CHAIN_STALLED")
    assert (flag["status"], flag["subject"], flag["agency"]) == ("OPEN", "B-1", "SOCIAL_INSURANCE")
    assert "child_insurance_card" in flag["detail"] and flag["opened_at"] == T0 + 15 * D


def test_birth_chain_completed_within_the_sla_is_not_stalled():
    feed = Feed().send(
        *birth_steps(T0, "B-1", residence_after=2 * D, card_after=14 * D), welfare(T0 + 40 * D)
    )
    assert feed.of_type("CHAIN_STALLED") == []


def test_late_chain_step_resolves_chain_stalled():
    feed = Feed().send(
        *birth_steps(T0, "B-1", residence_after=2 * D, card_after=None), welfare(T0 + 16 * D)
    )
    feed.send(event("HealthInsuranceCardIssued", T0 + 20 * D, 7, "B-1", for_child_under_6=True))
    flag = feed.only("CHAIN_STALLED")
    assert (flag["status"], flag["resolved_at"]) == ("RESOLVED", T0 + 20 * D)


def test_death_chain_names_the_missing_residence_deletion():
    feed = Feed().send(event("DeathRegistered", T0, 8, "X-1"), welfare(T0 + 31 * D))
    flag = feed.only("CHAIN_STALLED")
    assert flag["agency"] == "POLICE" and "residence_deregistered" in flag["detail"]


# -- PROCEDURE_OVERDUE ---------------------------------------------------------
def test_procedure_not_completed_by_due_date_is_overdue():
    flag = (
        Feed().send(submitted(T0, "P-1", T0 + 5 * D), welfare(T0 + 6 * D)).only("PROCEDURE_OVERDUE")
    )
    assert (flag["status"], flag["opened_at"], flag["agency"]) == ("OPEN", T0 + 5 * D, "PORTAL")


def test_procedure_completed_on_time_is_not_overdue():
    feed = Feed().send(
        submitted(T0, "P-1", T0 + 5 * D), completed(T0 + 5 * D, "P-1"), welfare(T0 + 9 * D)
    )
    assert feed.of_type("PROCEDURE_OVERDUE") == []


def test_late_completion_resolves_procedure_overdue():
    feed = Feed().send(
        submitted(T0, "P-1", T0 + 5 * D), welfare(T0 + 6 * D), completed(T0 + 7 * D, "P-1")
    )
    assert feed.only("PROCEDURE_OVERDUE")["resolved_at"] == T0 + 7 * D


def test_on_time_completion_consumed_late_withdraws_procedure_overdue():
    feed = Feed().send(submitted(T0, "P-1", T0 + 5 * D), welfare(T0 + 6 * D))
    feed.send(completed(T0 + 4 * D, "P-1"))
    assert feed.of_type("PROCEDURE_OVERDUE") == []
    assert feed.alerts[-1]["status"] == "WITHDRAWN"


# -- informational tallies -----------------------------------------------------
def test_reimported_file_makes_one_duplicate_flag_with_a_count():
    events = [card(T0 + i * 1000, citizen=i) for i in range(50)]
    feed = Feed().send(*events).send(*events)
    flag = feed.only("DUPLICATE_EVENT")
    assert flag["detail"].startswith("50 event(s) published more than once")
    assert flag["evidence"] == [e["event_id"] for e in events[:20]]
    assert len([a for a in feed.alerts if a["type"] == "DUPLICATE_EVENT"]) == 1


def test_distinct_events_raise_no_duplicate_flag():
    assert Feed().send(card(T0, 1), card(T0, 2)).of_type("DUPLICATE_EVENT") == []


def test_event_far_behind_its_own_topic_is_late():
    stale = card(T0, citizen=2)
    flag = Feed().send(card(T0 + 3 * D), stale).only("LATE_EVENT")
    assert flag["agency"] == "POLICE" and flag["evidence"] == [stale["event_id"]]


def test_event_behind_only_another_topics_progress_is_not_late():
    assert Feed().send(welfare(T0 + 3 * D), card(T0)).of_type("LATE_EVENT") == []


def test_late_event_still_counts_in_its_own_day():
    feed = Feed().send(card(T0 + 3 * D), card(T0, citizen=2))
    assert feed.processor.state(0).counters[f"id_cards_issued|{WARD}|2024-06-01"] == 1


def test_tally_resolves_when_the_watermark_passes_the_end_of_its_day():
    events = [card(T0, 1)]
    feed = Feed().send(*events).send(*events)
    assert feed.only("DUPLICATE_EVENT")["status"] == "OPEN"
    feed.send(welfare(T0 + 2 * D))
    flag = feed.only("DUPLICATE_EVENT")
    assert (
        flag["status"] == "RESOLVED" and flag["resolved_at"] == 1_717_261_200_000
    )  # 2024-06-02T00:00+07


def test_undecodable_messages_make_one_contract_violation_flag_per_day():
    feed = Feed()
    for i in range(30):
        feed.raw("lienthong.insurance", b"garbage %d" % i)
    flag = feed.only("CONTRACT_VIOLATION")
    assert flag["agency"] == "SOCIAL_INSURANCE" and flag["detail"].startswith("30 message(s)")
    assert len(flag["evidence"]) == 20 and len(feed.dead_letters) == 30


def test_every_flag_change_encodes_as_a_flag_record():
    feed = Feed().send(card(T0), welfare(T0 + 4 * D), sync(T0 + D))
    statuses = set()
    for alert in feed.alerts:
        sv, record = CODEC.decode_record(CODEC.encode_record("Flag", alert))
        assert sv.name == "Flag" and record["flag_id"] == alert["flag_id"]
        statuses.add(record["status"])
    assert statuses == {"OPEN", "WITHDRAWN"}


# -- determinism across cross-topic interleavings --------------------------------
def city_history(rng: random.Random) -> list[dict[str, Any]]:
    """A small month of mixed traffic with every flag type's ingredients, in event-time order."""
    history: list[dict[str, Any]] = []
    for c in range(40):
        base = T0 + rng.randrange(0, 20 * D)
        history.append(card(base, c))
        roll = rng.random()
        if roll < 0.7:
            history.append(sync(base + rng.randrange(0, 6 * D), c, ok=rng.random() > 0.2))
        if rng.random() < 0.4:
            history.append(sync(base + rng.randrange(0, 9 * D), c))
        if rng.random() < 0.5:
            history.append(checkin(base + rng.randrange(0, 9 * D), c, found=rng.random() > 0.5))
    for n in range(12):
        start = T0 + rng.randrange(0, 20 * D)
        history.extend(
            birth_steps(
                start,
                f"B-{n}",
                rng.choice([None, 3 * D, 20 * D]),
                rng.choice([None, 10 * D, 17 * D]),
            )
        )
    for n in range(15):
        at = T0 + rng.randrange(0, 25 * D)
        history.append(submitted(at, f"P-{n}", at + 5 * D))
        if rng.random() < 0.8:
            history.append(completed(at + rng.randrange(0, 8 * D), f"P-{n}"))
    history.sort(key=lambda e: e["occurred_at"])
    history.extend(rng.sample(history, 6))  # a replaying export, out of time order
    for c in range(100, 103):  # a feed delivering old cards after newer ones
        history.append(card(T0 + c * H, c))
    return history


def interleave(history: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The same per-topic sequences, merged across topics in a random order."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for e in history:
        queues.setdefault(TOPIC_OF_EVENT[e["event_type"]], []).append(e)
    merged: list[dict[str, Any]] = []
    while queues:
        topic = rng.choice(sorted(queues))
        merged.append(queues[topic].pop(0))
        if not queues[topic]:
            del queues[topic]
    return merged


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_in_another_cross_topic_interleaving_gives_the_same_flags(seed):
    rng = random.Random(seed)
    history = city_history(rng)
    in_time_order = Feed().send(*history).flags
    for _ in range(3):
        assert Feed().send(*interleave(history, rng)).flags == in_time_order
    assert {f["type"] for f in in_time_order.values()} >= {
        "SYNC_FAILED",
        "SYNC_MISSING",
        "INSURANCE_NOT_SHARED",
        "CHAIN_STALLED",
        "PROCEDURE_OVERDUE",
        "DUPLICATE_EVENT",
        "LATE_EVENT",
    }


# -- event time per source: a backfill raises no flag a live run would not ---------
IDENTITY, INSURANCE_TOPIC = "lienthong.identity", "lienthong.insurance"


def police_and_insurance_month() -> list[dict[str, Any]]:
    """Thirty days of cards, each synced within its SLA except citizen 7 (late) and 9 (never)."""
    history = []
    for c in range(30):
        history.append(card(T0 + c * D, c))
        if c == 7:
            history.append(sync(T0 + c * D + 5 * D, c))
        elif c != 9:
            history.append(sync(T0 + c * D + 2 * D, c, ok=c % 5 != 0))
    history.sort(key=lambda e: e["occurred_at"])
    return history


def changes_by_flag(feed: Feed) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alert in feed.alerts:
        out.setdefault(alert["flag_id"], []).append(alert["status"])
    return out


def test_insurance_history_read_after_the_police_history_opens_no_flag_that_is_withdrawn():
    history = police_and_insurance_month()
    live = Feed().send(*history)
    backfill = Feed().backfill(*history, order=(IDENTITY, INSURANCE_TOPIC))
    assert "WITHDRAWN" not in {a["status"] for a in backfill.alerts}
    assert set(changes_by_flag(backfill)) <= set(changes_by_flag(live))
    assert backfill.flags == live.flags
    missing = {f["subject"]: f["status"] for f in backfill.of_type("SYNC_MISSING")}
    assert missing == {ref(7): "RESOLVED", ref(9): "OPEN"}


def test_sync_missing_waits_while_the_insurance_feed_has_unread_history():
    history = police_and_insurance_month()
    feed = Feed()
    for e in (e for e in history if e["event_type"] == "IdCardIssued"):
        feed.raw(IDENTITY, CODEC.encode(e), idle=frozenset())  # insurance not read yet
    assert feed.of_type("SYNC_MISSING") == []


def test_check_ins_read_before_the_insurance_history_raise_no_insurance_not_shared_that_is_withdrawn():
    """The sync history up to a visit is judged on social insurance's clock, not the hospital's."""
    history = [card(T0), sync(T0 + H), sync(T0 + 2 * H, ok=False), checkin(T0 + 3 * H), welfare(T0 + 2 * D)]
    live = Feed().send(*history)
    backfill = Feed().backfill(*history, order=(IDENTITY, "lienthong.health", INSURANCE_TOPIC))
    assert live.of_type("INSURANCE_NOT_SHARED") == []
    assert [a for a in backfill.alerts if a["type"] == "INSURANCE_NOT_SHARED"] == []


def test_a_truly_silent_insurance_feed_does_not_hold_sync_missing_back():
    """Police onboarded first: social insurance sends nothing, so its caught-up feed is idle."""
    history = [card(T0 + c * D, c) for c in range(10)]
    feed = Feed().backfill(*history, order=(IDENTITY,))
    assert {f["subject"] for f in feed.of_type("SYNC_MISSING")} == {ref(c) for c in range(6)}
    assert {a["status"] for a in feed.alerts} == {"OPEN"}


def test_portal_history_read_after_a_feed_far_ahead_raises_no_overdue_that_is_withdrawn():
    history = [submitted(T0, "P-1", T0 + 5 * D), submitted(T0, "P-2", T0 + 5 * D),
               completed(T0 + 4 * D, "P-1"), welfare(T0 + 30 * D)]
    feed = Feed().backfill(*history, order=("lienthong.welfare", "lienthong.procedures"))
    assert [(a["subject"], a["status"]) for a in feed.alerts if a["type"] == "PROCEDURE_OVERDUE"] == [
        ("P-2", "OPEN")
    ]
    assert [f["subject"] for f in feed.of_type("PROCEDURE_OVERDUE")] == ["P-2"]


def test_chain_step_read_after_other_feeds_far_ahead_raises_no_stalled_chain():
    history = [*birth_steps(T0, "B-1", residence_after=3 * D, card_after=5 * D), welfare(T0 + 40 * D)]
    feed = Feed().backfill(
        *history, order=("lienthong.civil-status", INSURANCE_TOPIC, "lienthong.welfare", "lienthong.residence")
    )
    assert [a for a in feed.alerts if a["type"] == "CHAIN_STALLED"] == []


def test_a_missing_chain_step_is_judged_on_the_clock_of_the_feed_that_owes_it():
    history = [*birth_steps(T0, "B-1", residence_after=None, card_after=5 * D), welfare(T0 + 40 * D)]
    feed = Feed()
    for e in history:
        topic = TOPIC_OF_EVENT[e["event_type"]]
        feed.raw(topic, CODEC.encode(e), idle=frozenset())  # the residence feed is not idle: unread
    assert feed.of_type("CHAIN_STALLED") == []
    feed.raw("lienthong.residence", CODEC.encode(welfare_like_residence(T0 + 16 * D)), idle=frozenset())
    flag = feed.only("CHAIN_STALLED")
    assert flag["agency"] == "POLICE" and "permanent_residence" in flag["detail"]


def welfare_like_residence(at: int) -> dict[str, Any]:
    """A residence registration of someone else: moves only the police residence feed's clock."""
    return event("ResidenceRegistered", at, 98, kind="TEMPORARY", channel="COUNTER")


def test_feed_clocks_survive_a_restore_from_the_delta_log():
    from streams.clocks import CLOCK_KEY
    from streams.state import PartitionState

    feed = Feed()
    deltas = []
    for offset, e in enumerate([card(T0), card(T0 + 5 * D, 2)]):
        deltas.append(feed.processor.process(IDENTITY, 0, offset, CODEC.encode(e), T0, idle=frozenset()).delta)
    restored = PartitionState.fold(0, deltas)
    assert restored.stores["meta"][CLOCK_KEY + IDENTITY] == T0 + 5 * D
    assert CLOCK_KEY + INSURANCE_TOPIC not in restored.stores["meta"]


# -- SYNC_MISSING rolled up where social insurance sends nothing for a ward and day -----
ROLLUP_SUBJECT = f"SOCIAL_INSURANCE/{WARD}/2024-06-01"


def cards_of_one_day(n: int, first: int = 0) -> list[dict[str, Any]]:
    return [card(T0 + i * 60_000, first + i) for i in range(n)]


def test_cards_of_a_ward_day_without_any_insurance_event_make_one_flag_with_the_count():
    feed = Feed().send(*cards_of_one_day(10), welfare(T0 + 5 * D))
    flag = feed.only("SYNC_MISSING")
    assert (flag["subject"], flag["status"], flag["ward_code"], flag["opened_at"]) == (
        ROLLUP_SUBJECT, "OPEN", WARD, T0 + 72 * H)
    assert flag["detail"].startswith(f"10 ID card(s) issued on 2024-06-01 in ward {WARD}")
    assert [(a["subject"], a["status"]) for a in feed.alerts] == [(ROLLUP_SUBJECT, "OPEN")]
    behind = feed.processor.state(0).stores["rolled"]
    assert sorted(m["flag"]["subject"] for m in behind.values()) == sorted(ref(i) for i in range(10))


def test_an_insurance_event_for_the_ward_within_the_window_keeps_the_flags_per_citizen():
    other = sync(T0 + D, citizen=99)  # social insurance is sending for this ward
    feed = Feed().send(*cards_of_one_day(10), other, welfare(T0 + 5 * D))
    assert {f["subject"] for f in feed.of_type("SYNC_MISSING")} == {ref(i) for i in range(10)}


def test_fewer_cards_than_the_roll_up_minimum_are_flagged_one_by_one():
    feed = Feed().send(*cards_of_one_day(2), welfare(T0 + 5 * D))
    assert {f["subject"] for f in feed.of_type("SYNC_MISSING")} == {ref(0), ref(1)}


def test_insurance_data_of_the_window_read_late_releases_the_roll_up():
    feed = Feed().send(*cards_of_one_day(5), welfare(T0 + 5 * D))
    assert feed.only("SYNC_MISSING")["subject"] == ROLLUP_SUBJECT
    feed.send(sync(T0 + 2 * D, citizen=99))
    assert {f["subject"] for f in feed.of_type("SYNC_MISSING")} == {ref(i) for i in range(5)}
    assert (ROLLUP_SUBJECT, "WITHDRAWN") in [(a["subject"], a["status"]) for a in feed.alerts]


def behind_counted(feed: Feed) -> int:
    """The scorecard's breach counters for citizens behind roll-ups, summed."""
    return sum(v for k, v in feed.processor.state(0).counters.items() if k.startswith("rollup_behind:"))


def test_the_breach_counters_follow_the_citizens_into_a_roll_up_and_out_of_it():
    feed = Feed().send(*cards_of_one_day(5), welfare(T0 + 5 * D))
    assert behind_counted(feed) == len(feed.processor.state(0).stores["rolled"]) == 5
    assert feed.processor.state(0).counters[f"rollup_behind:SOCIAL_INSURANCE|{WARD}|2024-06-04"] == 5
    feed.send(sync(T0 + 2 * D, citizen=99))  # insurance data of the window: released, flagged one by one
    assert behind_counted(feed) == len(feed.processor.state(0).stores["rolled"]) == 0


def test_late_syncs_after_the_window_resolve_the_roll_up_once_every_card_has_one():
    feed = Feed().send(*cards_of_one_day(4), welfare(T0 + 5 * D))
    feed.send(*[sync(T0 + 6 * D + i * H, citizen=i) for i in range(3)])
    assert feed.only("SYNC_MISSING")["detail"].endswith("1 still missing")
    feed.send(sync(T0 + 7 * D, citizen=3))
    flag = feed.only("SYNC_MISSING")
    assert (flag["subject"], flag["status"], flag["resolved_at"]) == (ROLLUP_SUBJECT, "RESOLVED", T0 + 7 * D)
    assert [a["status"] for a in feed.alerts if a["subject"] == ROLLUP_SUBJECT] == ["OPEN", "RESOLVED"]


def test_police_read_ahead_of_a_silent_insurance_feed_rolls_up_as_a_live_run_does():
    history = [*cards_of_one_day(6), *(card(T0 + 3 * D + i, 50 + i) for i in range(3)), welfare(T0 + 9 * D)]
    live = Feed().send(*history)
    backfill = Feed().backfill(*history, order=("lienthong.welfare", IDENTITY))
    assert backfill.flags == live.flags
    assert [(a["subject"], a["status"]) for a in backfill.alerts] == [
        (ROLLUP_SUBJECT, "OPEN"), (f"SOCIAL_INSURANCE/{WARD}/2024-06-04", "OPEN")]


def test_a_roll_up_encodes_with_the_flag_contract():
    feed = Feed().send(*cards_of_one_day(3), welfare(T0 + 5 * D))
    [alert] = feed.alerts
    schema, record = CODEC.decode_record(CODEC.encode_record("Flag", alert))
    assert schema.name == "Flag" and record["subject"] == ROLLUP_SUBJECT and record["type"] == "SYNC_MISSING"


# -- deadlines survive a restore -------------------------------------------------
def test_pending_deadline_survives_a_restore_from_the_delta_log():
    from streams.state import PartitionState

    feed = Feed()
    deltas = []
    for e in (card(T0),):
        topic = TOPIC_OF_EVENT[e["event_type"]]
        deltas.append(feed.processor.process(topic, 0, 0, CODEC.encode(e), T0).delta)
    restored = Processor(CODEC, default_rules())
    restored.adopt(PartitionState.fold(0, deltas))
    late = welfare(T0 + 4 * D)
    restored.process("lienthong.welfare", 0, 0, CODEC.encode(late), T0)
    assert [f["type"] for f in restored.state(0).stores["flags"].values()] == ["SYNC_MISSING"]


# -- AGENCY_SILENT (wall clock) ----------------------------------------------------
def test_agency_silent_past_the_threshold_opens_and_resolves_when_heard_again():
    from streams.silence import SilenceMonitor

    monitor = SilenceMonitor(threshold_ms=60_000)
    assert monitor.check({"LABOUR": {"last_seen_ms": T0}}, T0 + 60_000) == []
    [opened] = monitor.check({"LABOUR": {"last_seen_ms": T0}}, T0 + 60_001)
    assert (opened["status"], opened["opened_at"], opened["subject"]) == (
        "OPEN",
        T0 + 60_000,
        "LABOUR",
    )
    assert monitor.check({"LABOUR": {"last_seen_ms": T0}}, T0 + 90_000) == []  # announced once
    [resolved] = monitor.check({"LABOUR": {"last_seen_ms": T0 + 95_000}}, T0 + 96_000)
    assert (resolved["status"], resolved["resolved_at"]) == ("RESOLVED", T0 + 95_000)


def test_agency_never_seen_is_never_silent():
    from streams.silence import SilenceMonitor

    assert SilenceMonitor(threshold_ms=1).check({}, T0) == []


# -- SLA configuration ---------------------------------------------------------------
def test_sla_environment_override_reaches_the_rules(monkeypatch):
    from hubbase.settings import Settings

    monkeypatch.setenv("LIENTHONG_SLA_INSURANCE_SYNC", "12")
    feed = Feed(Settings.from_env().sla).send(card(T0), welfare(T0 + 13 * H))
    assert feed.only("SYNC_MISSING")["opened_at"] == T0 + 12 * H


def test_unknown_sla_name_is_refused():
    with pytest.raises(ValueError, match="unknown SLA"):
        default_rules({"INSURANCE_SYNK": 12})
