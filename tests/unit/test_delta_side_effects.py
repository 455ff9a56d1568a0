"""A delta records its message's flags and dead letters, so a skipped replay can announce them again."""

from __future__ import annotations

from schemas.errors import ContractError
from streams.processor import DeadLetter, Processor, dead_letter_of_record
from streams.state import Delta, PartitionState, SourcePosition


def test_a_delta_written_before_side_effects_were_recorded_still_folds():
    old = b'{"s":0,"t":"lienthong.identity","o":4,"i":{"events_total||2024-06-01":1},"n":["e1"],"p":{}}'
    delta = Delta.decode(old)
    assert delta.alerts == [] and delta.dead == []
    state = PartitionState.fold(0, [delta])
    assert state.counters["events_total||2024-06-01"] == 1 and state.applied == {"lienthong.identity": 4}


def test_a_delta_without_side_effects_encodes_as_before():
    assert b'"a"' not in Delta(0, "t", 1).encode() and b'"d"' not in Delta(0, "t", 1).encode()


def test_a_refused_message_keeps_its_dead_letter_and_flag_in_its_delta():
    outcome = Processor().process("lienthong.identity", 0, 7, b"\x00garbage", 1_717_174_800_000)
    assert outcome.delta is not None
    decoded = Delta.decode(outcome.delta.encode())
    assert [f["type"] for f in decoded.alerts] == [f["type"] for f in outcome.flag_changes] == ["CONTRACT_VIOLATION"]
    value, headers = dead_letter_of_record(decoded.dead[0])
    assert value == b"\x00garbage"
    assert headers == outcome.dead_letters[0].headers()


def test_a_dead_letter_record_round_trips_any_bytes():
    letter = DeadLetter(bytes(range(256)), ContractError("f", "why"), SourcePosition("t", 1, 2, 3), batch_index=4)
    assert dead_letter_of_record(letter.record()) == (bytes(range(256)), letter.headers())
