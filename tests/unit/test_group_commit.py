"""Group commit (issue 16): a group of one topic-partition's messages is one state change,
with the state, flags, dead letters and audit records that processing them one by one gives."""

from __future__ import annotations

from functools import cache
from typing import Any

from bench.onboarding import august_cards, july_cards
from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from streams import audit
from streams.flags import default_rules
from streams.processor import Outcome, Processor, SourceMessage
from streams.state import Delta, PartitionState

CODEC = EventCodec()
#: The wall clock of the run (agency liveness reads it).
NOW_MS = 1_722_470_400_000
POISON = b"\xc3\x01not an event at all"


@cache
def messages() -> tuple[SourceMessage, ...]:
    """Single-event messages: July cards, a poison message and re-sent cards among them, then
    August cards (July's SYNC_MISSING deadlines fall due, more than one step's worth)."""
    values = [CODEC.encode(card) for card in july_cards(600)]
    values[100:100] = [POISON]
    values[250:250] = values[10:15]  # an agency's retry: duplicates
    values += [CODEC.encode(card) for card in august_cards(30, first=600)]
    return tuple(SourceMessage(offset, value, 1_719_792_000_000 + offset, key=b"key-%d" % offset)
                 for offset, value in enumerate(values))


def processor() -> Processor:
    return Processor(CODEC, default_rules(), deadline_step=50)


def one_by_one() -> tuple[Processor, list[Outcome]]:
    p = processor()
    return p, [p.process_group(IDENTITY, 0, [m], now_ms=NOW_MS, idle=frozenset()) for m in messages()]


def in_groups(size: int) -> tuple[Processor, list[Outcome]]:
    p, found = processor(), messages()
    outcomes = [p.process_group(IDENTITY, 0, found[i:i + size], now_ms=NOW_MS, idle=frozenset())
                for i in range(0, len(found), size)]
    return p, outcomes


def state_of(state: PartitionState) -> dict[str, Any]:
    """What a reader sees: counters, per-subject stores and the fence (not the delta sequence,
    which counts changes; nor the partials' copy of it)."""
    stores = {name: dict(store) for name, store in state.stores.items() if name != "partials"}
    stores["partials"] = {k: {f: v for f, v in p.items() if f != "seq"} for k, p in state.stores["partials"].items()}
    return {"applied": dict(state.applied), "counters": {k: v for k, v in state.counters.items() if v},
            "stores": stores, "seen": {b: set(ids) for b, ids in state.seen.items()}}


def final_flags(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """The alerts topic compacted: each flag's last announcement."""
    return {flag["flag_id"]: flag for outcome in outcomes for flag in outcome.flag_changes}


def test_a_group_ends_in_the_state_processing_its_messages_one_by_one_gives():
    single, _ = one_by_one()
    expected = state_of(single.state(0))
    assert expected["stores"]["flags"] or expected["stores"]["rolled"]  # deadlines fell due: flags to compare
    for size in (2, 7, 64, len(messages())):
        grouped, _ = in_groups(size)
        assert state_of(grouped.state(0)) == expected, f"groups of {size}"


def test_a_group_announces_the_flags_that_one_by_one_announces():
    _, singles = one_by_one()
    _, grouped = in_groups(64)
    assert final_flags(grouped) == final_flags(singles)


def test_a_poison_message_inside_a_group_is_dead_lettered_alone_and_the_rest_counts():
    _, outcomes = in_groups(len(messages()))
    (outcome,) = outcomes
    (dead,) = outcome.dead_letters
    assert dead.where.offset == 100 and dead.key == b"key-100"
    assert sum(outcome.accepted.values()) == 630
    assert outcome.delta is not None and outcome.delta.dead == [dead.record()]


def test_duplicates_inside_a_group_count_once():
    grouped, outcomes = in_groups(len(messages()))
    assert sum(o.duplicates["POLICE"] for o in outcomes) == 5
    counted = sum(v for k, v in grouped.state(0).counters.items() if k.startswith("id_cards_issued|"))
    assert counted == 630


def test_a_group_is_one_delta_fenced_at_its_last_offset_and_naming_its_first():
    _, outcomes = in_groups(10)
    delta = outcomes[3].delta
    assert delta is not None and (delta.first, delta.offset) == (30, 39)
    again = Delta.decode(delta.encode())
    assert (again.first, again.offset) == (30, 39)


def test_a_replayed_group_is_skipped_and_one_straddling_the_fence_applies_only_the_new_messages():
    p, found = processor(), messages()
    p.process_group(IDENTITY, 0, found[:20], idle=frozenset())
    assert p.process_group(IDENTITY, 0, found[5:20], idle=frozenset()).skipped
    straddling = p.process_group(IDENTITY, 0, found[10:30], idle=frozenset())
    assert straddling.delta is not None and (straddling.delta.first, straddling.delta.offset) == (20, 29)
    assert sum(straddling.accepted.values()) == 10


def test_a_group_keeps_every_audit_record_so_a_replay_can_announce_them_all_again():
    _, single = one_by_one()
    _, grouped = in_groups(64)
    expected = [o.audit for o in single if o.audit is not None]
    assert [r for o in grouped for r in o.audits] == expected  # the same hash chain
    assert [r for o in grouped if o.delta for r in audit.records_of_delta(Delta.decode(o.delta.encode()))] == expected


def test_a_dead_letter_kept_in_a_group_delta_keeps_its_own_message_key():
    from streams.processor import dead_letter_key

    _, (outcome,) = in_groups(len(messages()))
    assert outcome.delta is not None
    (record,) = outcome.delta.dead
    assert dead_letter_key(record, b"the replayed message's key") == b"key-100"


def test_a_group_behind_a_backlog_of_due_deadlines_ends_where_the_step_is_spent():
    """July's cards read while social insurance's feed is busy, then August with every feed
    idle (None): every July deadline falls due; a step of 50 per message, as one by one."""
    found = messages()
    july, august = found[:606], found[606:]

    def run(group: bool) -> tuple[Processor, int]:
        p = processor()
        p.process_group(IDENTITY, 0, july, now_ms=NOW_MS, idle=frozenset())
        changes, rest = 0, list(august)
        while rest:
            outcome = p.process_group(IDENTITY, 0, rest if group else rest[:1], now_ms=NOW_MS, idle=None)
            assert outcome.delta is not None
            assert sum(1 for k in outcome.delta.put.get("flags", {}) if k.startswith("SYNC_MISSING:")) <= 50
            rest = rest[outcome.consumed:]
            changes += 1
        return p, changes

    grouped, changes = run(group=True)
    single, _ = run(group=False)
    assert 1 < changes < len(august), "the backlog should cut the group, not undo it"
    assert state_of(grouped.state(0)) == state_of(single.state(0))
