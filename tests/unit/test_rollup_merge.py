"""The merge stage: one SYNC_MISSING roll-up per ward × day from the partials of every partition."""

from __future__ import annotations

from typing import Any

from schemas.topics import IDENTITY
from streams.flags import default_rules
from streams.flags.rollups import merge_step, merged_rollups, parse_rollup_subject, rollup_flag_id
from streams.processor import Processor
from streams.rollup_merge import merge, partial_messages
from tests.unit.test_flags import CODEC, T0, WARD, D, H, card, sync, welfare

KEY = f"{WARD}|2024-06-01"
FLAG_ID = f"SYNC_MISSING:SOCIAL_INSURANCE/{WARD}/2024-06-01"


def partial(partition: int, count: int, still_open: int, seq: int = 1, **extra: Any) -> dict[str, Any]:
    status = "WITHDRAWN" if count == 0 else ("OPEN" if still_open else "RESOLVED")
    return {
        "ward": WARD, "day": "2024-06-01", "partition": partition, "seq": seq, "count": count,
        "open": still_open, "status": status, "opened_at": T0 + 72 * H + partition,
        "resolved_at": None if still_open or not count else T0 + 5 * D + partition,
        "until": "2024-06-04", "sla_ms": 72 * H, "evidence": [[T0 + 72 * H + partition, f"card-{partition}"]],
        **extra,
    }


def run(*partials: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    entry: dict[str, Any] | None = None
    announced: list[dict[str, Any]] = []
    for p in partials:
        entry, out = merge_step(entry, p)
        announced.extend(out)
    return entry, announced


def test_partials_of_several_partitions_make_one_flag_with_the_total_count():
    [flag] = merged_rollups([partial(0, 4, 4), partial(3, 2, 2), partial(5, 6, 6)])
    assert (flag["flag_id"], flag["status"], flag["opened_at"]) == (FLAG_ID, "OPEN", T0 + 72 * H)
    assert flag["detail"].startswith(f"12 ID card(s) issued on 2024-06-01 in ward {WARD}")
    assert flag["detail"].endswith("12 still missing")
    assert flag["evidence"] == ["card-0", "card-3", "card-5"]


def test_the_merged_flag_is_announced_once_when_several_partitions_open():
    _, announced = run(partial(0, 4, 4), partial(3, 2, 2), partial(5, 6, 6))
    assert [(a["flag_id"], a["status"]) for a in announced] == [(FLAG_ID, "OPEN")]


def test_the_merged_flag_resolves_only_when_every_partition_has_resolved():
    _, announced = run(partial(0, 4, 4), partial(3, 2, 2), partial(0, 4, 0, seq=2))
    assert [a["status"] for a in announced] == ["OPEN"]
    entry, more = merge_step(run(partial(0, 4, 4), partial(3, 2, 2), partial(0, 4, 0, seq=2))[0],
                             partial(3, 2, 0, seq=7))
    [resolved] = more
    assert (resolved["status"], resolved["resolved_at"]) == ("RESOLVED", T0 + 5 * D + 3)
    assert entry["announced"] == resolved


def test_a_replayed_partial_changes_nothing_and_repeats_the_last_announcement():
    entry, _ = run(partial(0, 4, 4), partial(3, 2, 2))
    again, out = merge_step(entry, partial(3, 2, 2))
    assert again is entry and [(a["flag_id"], a["status"]) for a in out] == [(FLAG_ID, "OPEN")]
    assert merged_rollups(again["partials"].values())[0]["detail"].startswith("6 ID card(s)")


def test_an_older_partial_of_a_partition_does_not_replace_a_newer_one():
    entry, _ = run(partial(0, 4, 4, seq=9))
    again, out = merge_step(entry, partial(0, 1, 1, seq=3))
    assert again is entry and out == []


def test_the_merged_flag_is_withdrawn_when_every_partition_withdrew_its_share():
    _, announced = run(partial(0, 4, 4), partial(3, 2, 2), partial(0, 0, 0, seq=2), partial(3, 0, 0, seq=2))
    assert [(a["status"], a["flag_id"]) for a in announced] == [("OPEN", FLAG_ID), ("WITHDRAWN", FLAG_ID)]


def test_a_partition_withdrawing_its_share_leaves_the_others_open_with_their_count():
    entry, announced = run(partial(0, 4, 4), partial(3, 2, 2), partial(0, 0, 0, seq=2))
    assert [a["status"] for a in announced] == ["OPEN"]
    [flag] = merged_rollups(entry["partials"].values())
    assert flag["detail"].startswith("2 ID card(s)") and flag["status"] == "OPEN"


def test_the_roll_up_subject_names_agency_ward_and_day_only():
    assert rollup_flag_id(KEY) == FLAG_ID
    assert parse_rollup_subject(f"SOCIAL_INSURANCE/{WARD}/2024-06-01") == KEY
    assert parse_rollup_subject("SOCIAL_INSURANCE/2024-06-01/p3") is None  # a tally's subject


# -- through the processor: cards of one ward × day on several partitions -------------
def test_cards_of_one_ward_day_on_three_partitions_raise_one_flag_through_the_merge_stage():
    processor = Processor(CODEC, default_rules())
    table: dict[str, bytes] = {}
    alerts: list[dict[str, Any]] = []
    offsets: dict[tuple[str, int], int] = {}
    citizen = 0

    def send(partition: int, event: dict[str, Any], topic: str) -> None:
        offset = offsets.get((topic, partition), -1) + 1
        offsets[(topic, partition)] = offset
        outcome = processor.process(topic, partition, offset, CODEC.encode(event), T0, now_ms=T0)
        assert outcome.delta is not None
        alerts.extend(outcome.flag_changes)
        for _, value, _ in partial_messages(outcome.delta.put.get("partials") or {}, 8):
            for _ in range(2):  # every partial read twice (a replay): nothing changes
                group, updated, announce = merge(value, table.get)
                if updated is not None:
                    table[group] = updated
                alerts.extend(announce)

    for partition, cards in ((0, 3), (1, 4), (2, 5)):
        for i in range(cards):
            send(partition, card(T0 + i * 60_000, citizen), IDENTITY)
            citizen += 1
        send(partition, welfare(T0 + 5 * D), "lienthong.welfare")
    partials = [p for s in processor.states.values() for p in s.stores["partials"].values()]
    [flag] = merged_rollups(partials)
    assert flag["detail"].startswith("12 ID card(s)") and flag["status"] == "OPEN"
    assert {(a["flag_id"], a["status"]) for a in alerts if a["type"] == "SYNC_MISSING"} == {(FLAG_ID, "OPEN")}
    # late syncs for every card on partitions 0 and 1: still open until partition 2's arrive
    citizen = 0
    for partition, cards in ((0, 3), (1, 4), (2, 5)):
        for i in range(cards):
            send(partition, sync(T0 + 6 * D + i, citizen), "lienthong.insurance")
            citizen += 1
        statuses = [a["status"] for a in alerts if a["flag_id"] == FLAG_ID]
        assert statuses[-1] == ("RESOLVED" if partition == 2 else "OPEN")
    assert sorted({a["status"] for a in alerts if a["flag_id"] == FLAG_ID}) == ["OPEN", "RESOLVED"]


# -- the view any worker serves: its own partitions live, the others from snapshots ----
def test_the_view_shows_one_roll_up_from_local_and_remote_partitions_and_scores_it_once():
    from streams.view import CityView, snapshot_of

    processor = Processor(CODEC, default_rules())
    citizen = 0
    for partition, cards in ((0, 3), (4, 5)):
        events = [card(T0 + i * 60_000, citizen + i) for i in range(cards)] + [welfare(T0 + 5 * D)]
        citizen += cards
        for offset, event in enumerate(events):
            topic = IDENTITY if event["event_type"] == "IdCardIssued" else "lienthong.welfare"
            processor.process(topic, partition, offset, CODEC.encode(event), T0, now_ms=T0)
    view = CityView()
    view.local = {0: processor.states[0]}  # partition 4 is another worker's: seen through its snapshot
    view.accept_snapshot(snapshot_of(processor.states[4], "other-worker"))
    [flag] = [f for f in view.flags if f["type"] == "SYNC_MISSING"]
    assert (flag["flag_id"], flag["status"]) == (FLAG_ID, "OPEN") and flag["detail"].startswith("8 ID card(s)")
    subjects, count, elsewhere = view.rolled_subjects(KEY)
    # snapshots carry no citizen flags: partition 4's three are listed by its owner
    assert (len(subjects), count, elsewhere) == (3, 8, [4])
    totals, _ = view.scorecard()
    [insurance] = [row for row in totals if row["agency"] == "SOCIAL_INSURANCE"]
    assert (insurance["flags_open"], insurance["sla_breaches"]) == (1, 8)


def test_a_view_tracking_a_processor_keeps_the_owned_counters_as_a_full_merge_would():
    from collections import Counter

    from streams.state import PartitionState
    from streams.view import CityView

    processor = Processor(CODEC, default_rules())
    view = CityView()
    processor.process(IDENTITY, 0, 0, CODEC.encode(card(T0, 1)), T0, now_ms=T0)  # before it tracks
    view.track(processor)
    for offset, citizen in enumerate(range(2, 6), start=1):
        processor.process(IDENTITY, citizen % 2, offset, CODEC.encode(card(T0 + offset, citizen)), T0, now_ms=T0)

    def merged() -> Counter[str]:
        total: Counter[str] = Counter()
        for state in processor.states.values():
            total.update(state.counters)
        return total

    assert dict(view.counters.items()) == +merged() and view.counters[f"id_cards_issued|{WARD}|2024-06-01"] == 5
    processor.drop(1)  # revoked: its counters leave with it
    assert dict(view.counters.items()) == +merged() and view.counters[f"id_cards_issued|{WARD}|2024-06-01"] == 3
    processor.adopt(PartitionState.fold(0, []))  # partition 0 rebuilt empty: its old counters are replaced
    assert dict(view.counters.items()) == +merged() == Counter()
