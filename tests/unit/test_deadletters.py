"""Dead-letter records: who sent them, which ones a filter picks, what a replay carries."""

from __future__ import annotations

import pytest

from lienthong.deadletters import (
    DeadLetterRecord,
    ReplayRefused,
    Selection,
    decoded_event,
    lineage,
    parse_id,
    raw_replay,
)
from schemas.codec import EventCodec
from schemas.topics import HEALTH, HEARTBEATS, IDENTITY
from tests.unit.test_flags import T0, card

ONE_DAY = 86_400_000


def letter(topic: str = IDENTITY, *extra: tuple[str, bytes], reason: str = "IdCardIssued.ward_code: '99999' is not a ward",
           at: int = T0, value: bytes = b"x") -> DeadLetterRecord:
    field = reason.split(":")[0].split(".")[-1]
    return DeadLetterRecord(2, 17, at, b"key", value, [
        ("lienthong.reason", reason.encode()), ("lienthong.field", field.encode()),
        ("lienthong.source.topic", topic.encode()), ("lienthong.source.partition", b"5"),
        ("lienthong.source.offset", b"40"), *extra])


def test_the_agency_is_the_signed_sender_or_else_the_one_agency_of_the_topic() -> None:
    assert letter(IDENTITY).agency == "POLICE"
    assert letter(HEALTH).agency == "HEALTH"
    assert letter(HEARTBEATS).agency == ""  # any agency sends heartbeats
    assert letter(HEARTBEATS, ("lienthong.agency", b"LABOUR")).agency == "LABOUR"


def test_a_selection_matches_on_every_filter_it_has() -> None:
    one = letter(IDENTITY, at=T0)
    assert Selection().matches(one) and Selection().empty
    assert Selection(agency="POLICE", field="ward_code", reason="NOT A WARD").matches(one)
    assert not Selection(agency="HEALTH").matches(one)
    assert not Selection(field="card_kind").matches(one)
    assert Selection(since_ms=T0, until_ms=T0 + 1).matches(one)
    assert not Selection(since_ms=T0 + 1).matches(one) and not Selection(until_ms=T0).matches(one)


def test_ids_are_partition_colon_offset() -> None:
    assert parse_id("3:17") == (3, 17)
    with pytest.raises(ValueError, match="partition:offset"):
        parse_id("3-17")


def test_a_raw_replay_goes_back_to_its_source_topic_and_partition_byte_for_byte() -> None:
    assert raw_replay(letter(HEALTH, value=b"same")) == (HEALTH, 5, b"key", b"same")


def test_a_redacted_dead_letter_is_refused_for_a_raw_replay() -> None:
    with pytest.raises(ReplayRefused, match="redacted"):
        raw_replay(letter(HEALTH, ("lienthong.redacted", b"true")))


def test_a_dead_letter_with_any_count_of_masked_values_is_refused_for_a_raw_replay() -> None:
    for count in (b"1", b"2", b"12"):
        with pytest.raises(ReplayRefused, match="redacted"):
            raw_replay(letter(HEALTH, ("lienthong.redacted", count)))
    assert raw_replay(letter(HEALTH, ("lienthong.redacted", b"0")))[0] == HEALTH


def test_lineage_moves_the_reason_headers_and_keeps_the_senders() -> None:
    sent = letter(IDENTITY, ("lienthong.agency", b"POLICE"), ("lienthong.signature", b"sig"))
    raw = dict(lineage(sent, corrected=False))
    assert raw["lienthong.replay.of"] == b"lienthong.deadletter/2/17"
    assert raw["lienthong.replay.source"] == b"lienthong.identity/5/40"
    assert raw["lienthong.signature"] == b"sig" and raw["lienthong.agency"] == b"POLICE"
    assert not any(k in raw for k in ("lienthong.reason", "lienthong.field", "lienthong.source.topic"))
    corrected = dict(lineage(sent, corrected=True))
    assert "lienthong.signature" not in corrected and corrected["lienthong.replay.corrected"] == b"true"


def test_a_replayed_letter_replayed_again_has_one_lineage_not_two() -> None:
    once = letter(IDENTITY)
    twice = DeadLetterRecord(3, 1, T0, None, b"x", once.headers + lineage(once, corrected=False))
    assert [k for k, _ in lineage(twice, corrected=False)].count("lienthong.replay.of") == 1


def test_a_replayed_message_refused_again_keeps_its_replay_lineage_on_the_new_dead_letter() -> None:
    from streams.processor import Processor

    replayed = lineage(letter(IDENTITY), corrected=False)
    outcome = Processor().process(IDENTITY, 5, 41, b"\x00still not avro", T0, headers=replayed)
    [dead] = outcome.dead_letters
    headers = dead.headers()
    assert [h for h in headers if h[0].startswith("lienthong.replay.")] == [
        h for h in replayed if h[0].startswith("lienthong.replay.")]
    assert dict(headers)["lienthong.source.offset"] == b"41"  # where the replay itself was read
    assert outcome.delta is not None and outcome.delta.dead[0]["h"] == [[k, v.decode()] for k, v in headers]


def test_a_message_refused_whole_keeps_its_signature_so_a_raw_replay_can_be_verified() -> None:
    from streams.processor import Processor

    signed = [("lienthong.agency", b"POLICE"), ("lienthong.key_id", b"k1"), ("lienthong.signature", b"sig")]
    [dead] = Processor().process(IDENTITY, 5, 41, b"\x00not avro", T0, headers=signed).dead_letters
    assert [h for h in dead.headers() if h[0] in ("lienthong.agency", "lienthong.key_id", "lienthong.signature")] == signed


def test_a_message_that_is_not_a_replay_has_no_lineage_on_its_dead_letter() -> None:
    from streams.processor import Processor

    [dead] = Processor().process(IDENTITY, 5, 41, b"\x00not avro", T0).dead_letters
    assert not any(k.startswith("lienthong.replay.") for k, _ in dead.headers())


def test_an_avro_event_decodes_with_iso_times_and_garbage_does_not() -> None:
    event = decoded_event(EventCodec().encode(card(T0 + ONE_DAY)))
    assert event["event_type"] == "IdCardIssued" and event["occurred_at"] == "2024-06-02T00:00:00.000Z"
    assert decoded_event(b"\x00not avro") is None
