"""GET /api/flags pages: a stable order, cursors that never repeat or skip, API times."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.wards import city_wards
from streams.api.flag_pages import (
    CURSOR_PATTERN,
    MAX_LIMIT,
    PageError,
    PageRequest,
    api_flag,
    decode_cursor,
    encode_cursor,
    page_of,
)
from streams.flags.records import make_flag

WARD = min(city_wards())
T0 = 1_717_200_000_000


def flag(n: int, opened_at: int | None = None, flag_type: str = "SYNC_FAILED") -> dict[str, object]:
    return make_flag(flag_type, status="OPEN", agency="SOCIAL_INSURANCE", ward=WARD, subject=f"s{n:03d}",
                     opened_at=T0 + (n // 3) * 1000 if opened_at is None else opened_at)


def all_pages(flags: list[dict[str, object]], limit: int, order: str = "asc") -> list[list[str]]:
    pages, cursor = [], None
    while True:
        body = page_of(flags, PageRequest(limit, None if cursor is None else decode_cursor(cursor), order))
        pages.append([f["flag_id"] for f in body["flags"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_pages_give_every_flag_once_in_opened_then_id_order() -> None:
    flags = [flag(n) for n in range(50)]  # three flags share each opened_at: the id breaks ties
    pages = all_pages(flags, 7)
    assert [len(p) for p in pages] == [7] * 7 + [1]
    expected = [f["flag_id"] for f in sorted(flags, key=lambda f: (f["opened_at"], f["flag_id"]))]
    assert [fid for page in pages for fid in page] == expected


def test_newest_first_pages_are_the_same_flags_reversed() -> None:
    flags = [flag(n) for n in range(20)]
    assert [fid for p in all_pages(flags, 6, "desc") for fid in p] == \
        list(reversed([fid for p in all_pages(flags, 6) for fid in p]))


def test_a_flag_opening_between_two_pages_neither_repeats_nor_skips_the_others() -> None:
    flags = [flag(n) for n in range(20)]
    first = page_of(flags, PageRequest(10))
    flags.insert(0, flag(999, opened_at=T0 - 1))  # an older flag arrives late (a backfill)
    second = page_of(flags, PageRequest(10, decode_cursor(first["next_cursor"])))
    given_ids = [f["flag_id"] for f in first["flags"] + second["flags"]]
    assert len(set(given_ids)) == 20 and "SYNC_FAILED:s999" not in given_ids


def test_totals_count_every_match_not_only_the_page() -> None:
    flags = [flag(n) for n in range(12)] + [flag(100 + n, flag_type="PROCEDURE_OVERDUE") for n in range(3)]
    body = page_of(flags, PageRequest(5))
    assert body["total"] == 15 and body["by_type"] == {"SYNC_FAILED": 12, "PROCEDURE_OVERDUE": 3}
    assert len(body["flags"]) == 5


def test_the_last_page_has_no_next_cursor() -> None:
    body = page_of([flag(n) for n in range(3)], PageRequest(3))
    assert body["next_cursor"] is None


def test_api_flags_have_iso_utc_times_and_the_ward_name() -> None:
    shown = api_flag(dict(flag(1, opened_at=T0), resolved_at=T0 + 1500))
    assert shown["opened_at"] == "2024-06-01T00:00:00.000Z"
    assert shown["resolved_at"] == "2024-06-01T00:00:01.500Z"
    assert shown["ward_name"] == city_wards()[WARD]


@pytest.mark.parametrize(("query", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": str(MAX_LIMIT + 1)}, "limit"), ({"limit": "ten"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"order": "sideways"}, "order"),
])
def test_a_paging_parameter_the_api_cannot_use_names_its_field(query: dict[str, str], field: str) -> None:
    with pytest.raises(PageError) as refused:
        PageRequest.parse(query)
    assert refused.value.field == field and refused.value.reason


@given(ms=st.integers(0, 10**15 - 1), flag_id=st.text(max_size=60))
def test_a_cursor_is_the_position_it_was_made_from(ms: int, flag_id: str) -> None:
    cursor = encode_cursor((ms, flag_id))
    if len(flag_id.encode()) <= 256:
        assert re.fullmatch(CURSOR_PATTERN, cursor)
        assert decode_cursor(cursor) == (ms, flag_id)


@given(cursor=st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_string_the_openapi_pattern_allows_is_a_usable_cursor(cursor: str) -> None:
    page_of([flag(n) for n in range(5)], PageRequest(2, decode_cursor(cursor)))
