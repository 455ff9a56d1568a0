"""The view's packed city counters read and write as the Counter they replace."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from streams.city_counters import MAX_ROW_DAYS, CityCounters

DAYS = st.one_of(
    st.dates().map(lambda d: d.isoformat()),  # any date, including ones far apart in one row
    st.sampled_from(["", "-", "2026-02-30", "someday"]),  # not ISO dates: kept beside the row
)
KEYS = st.builds(lambda metric, ward, day: f"{metric}|{ward}|{day}",
                 st.sampled_from(["events_total", "delay:POLICE:145", "flags:OPEN:SYNC_MISSING:BHXH"]),
                 st.sampled_from(["26506", "", "27001"]), DAYS)
CHANGES = st.lists(st.tuples(st.booleans(), st.dictionaries(KEYS, st.integers(-50, 50), max_size=6)), max_size=30)


@given(CHANGES)
def test_packed_counters_hold_what_a_counter_holds(changes: list[tuple[bool, dict[str, int]]]) -> None:
    packed, plain = CityCounters(), Counter[str]()
    for adding, counts in changes:
        (packed.update if adding else packed.subtract)(counts)
        (plain.update if adding else plain.subtract)(counts)
    expected = {key: n for key, n in plain.items() if n}
    assert dict(packed.items()) == expected
    assert all(packed[key] == n for key, n in plain.items())
    assert len(packed) == len(expected)


def test_an_absent_counter_reads_zero() -> None:
    counters = CityCounters()
    counters.update({"events_total|26506|2026-07-01": 3})
    assert counters["events_total|26506|2026-07-02"] == 0
    assert counters["id_cards_issued|26506|2026-07-01"] == 0


def test_a_day_too_far_from_its_row_is_kept_beside_it() -> None:
    counters = CityCounters()
    counters.update({"events_total|26506|2026-07-01": 1, "events_total|26506|1900-01-01": 2})
    row = counters.rows["events_total|26506"]
    assert len(row.counts) <= MAX_ROW_DAYS and row.other == {"1900-01-01": 2}
    assert dict(counters.items()) == {"events_total|26506|2026-07-01": 1, "events_total|26506|1900-01-01": 2}


def test_a_year_of_a_city_is_a_fraction_of_a_counter() -> None:
    """8 metrics × 168 wards × 365 days: what the view held at 2 M ID cards (issue 12).

    Keys and counts are made as they are read from disk: a new string and int each.
    """
    from datetime import date, timedelta

    days = [(date(2026, 1, 1) + timedelta(d)).isoformat() for d in range(120)]

    def read() -> Iterator[tuple[str, int]]:
        n = 1000
        for m in range(8):
            for w in range(168):
                for day in days:
                    n += 1
                    yield f"metric{m}|{26000 + w}|{day}", n

    tracemalloc.start()
    try:
        plain = Counter(dict(read()))
        plain_bytes = tracemalloc.get_traced_memory()[0]
        del plain
        base = tracemalloc.get_traced_memory()[0]
        packed = CityCounters()
        packed.update(read())
        packed_bytes = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(packed) == 8 * 168 * 120
    assert packed_bytes * 5 < plain_bytes


@given(CHANGES, CHANGES, st.sampled_from([1, -1]))
def test_adding_packed_counters_row_by_row_is_adding_them_key_by_key(
    mine: list[tuple[bool, dict[str, int]]], theirs: list[tuple[bool, dict[str, int]]], sign: int,
) -> None:
    def packed(changes: list[tuple[bool, dict[str, int]]]) -> CityCounters:
        counters = CityCounters()
        for adding, counts in changes:
            (counters.update if adding else counters.subtract)(counts)
        return counters

    by_rows, by_keys, other = packed(mine), packed(mine), packed(theirs)
    by_rows.add_all(other, sign)
    (by_keys.update if sign == 1 else by_keys.subtract)(dict(other.items()))
    assert dict(by_rows.items()) == dict(by_keys.items())
