"""Records split into parts: every part fits, and a reader takes all parts of a value or none."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from streams import parts

#: The smallest record limit that leaves room for data after the part header.
OVERHEAD_MIN = parts.OVERHEAD + 1

KEY = "0003|lienthong.identity|000000000042"


def test_a_value_that_fits_is_one_record_unchanged():
    assert parts.split(b"{}", 4096) == [b"{}"]


def test_a_large_value_is_split_into_parts_that_each_fit_and_join_back():
    value = os.urandom(50_000)
    pieces = parts.split(value, 4096)
    assert len(pieces) > 10 and all(len(p) <= 4096 for p in pieces)
    items = [(parts.part_key(KEY, i), p) for i, p in enumerate(pieces)]
    assert parts.assemble(items) == {KEY: value}


def test_a_value_missing_one_part_is_left_out():
    pieces = parts.split(os.urandom(50_000), 4096)
    items = [(parts.part_key(KEY, i), p) for i, p in enumerate(pieces) if i != 3]
    assert parts.assemble(items) == {}


def test_parts_left_by_an_interrupted_write_do_not_mix_with_the_rewrite():
    first, second = os.urandom(50_000), os.urandom(30_000)
    old = [(parts.part_key(KEY, i), p) for i, p in enumerate(parts.split(first, 4096))][:-2]
    new = [(parts.part_key(KEY, i), p) for i, p in enumerate(parts.split(second, 4096))]
    # the table keeps the newest value per key: the rewrite replaces the old parts it overlaps
    assert len(old) > len(new)
    table = dict(old)
    table.update(new)
    assert parts.assemble(table.items()) == {KEY: second}


def test_whole_records_pass_through_beside_split_ones():
    value = os.urandom(20_000)
    items = [("other", b'{"s":1}')] + [(parts.part_key(KEY, i), p) for i, p in enumerate(parts.split(value, 4096))]
    assert parts.assemble(items) == {"other": b'{"s":1}', KEY: value}


def test_the_snapshot_assembler_hands_out_a_value_once_its_last_part_arrives():
    value = os.urandom(9_000)
    assembler = parts.Assembler()
    got = [assembler.add("w|3", p) for p in parts.split(value, 4096)]
    assert got[:-1] == [None] * (len(got) - 1) and got[-1] == value


@given(pieces=st.lists(st.binary(max_size=3000), max_size=20), limit=st.integers(OVERHEAD_MIN, 4000))
def test_a_value_streamed_in_pieces_joins_back_from_records_that_each_fit(pieces, limit):
    records = list(parts.split_stream(iter(pieces), limit))
    assert all(len(record) <= limit for record in records)
    assembler = parts.Assembler()
    wholes = [whole for record in records if (whole := assembler.add("p3", record)) is not None]
    assert wholes == [b"".join(pieces)]


def test_a_streamed_value_that_fits_is_one_whole_record():
    assert list(parts.split_stream(iter([b'{"a":', b"1}"]), 4096)) == [b'{"a":1}']


def test_a_streamed_value_is_not_handed_out_until_its_last_part_says_how_many_there_are():
    value = os.urandom(5000)
    records = list(parts.split_stream(iter([value[:2500], value[2500:]]), 2048))
    assembler = parts.Assembler()
    assert [assembler.add("p1", record) for record in records[:-1]] == [None] * (len(records) - 1)
    assert assembler.add("p1", records[-1]) == value


def test_a_streamed_value_cut_short_by_a_crash_is_replaced_by_the_next_whole_one():
    first = list(parts.split_stream(iter([os.urandom(5000)]), 2048))
    second = os.urandom(5000)
    assembler = parts.Assembler()
    for record in first[:-1]:  # the writer died before its last part
        assert assembler.add("p1", record) is None
    got = [assembler.add("p1", record) for record in parts.split_stream(iter([second]), 2048)]
    assert got[-1] == second and got[:-1] == [None] * (len(got) - 1)


def test_a_value_that_begins_with_the_part_mark_is_never_sent_whole():
    value = parts.MARK + b"not a part"
    for records in (parts.split(value, 4096), list(parts.split_stream(iter([value]), 4096))):
        assembler = parts.Assembler()
        assert [whole for r in records if (whole := assembler.add("k", r)) is not None] == [value]
