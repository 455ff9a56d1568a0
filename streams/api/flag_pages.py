"""``GET /api/flags`` one page at a time: filter, stable order, cursor, API times.

Flags are stored with UTC millisecond times (the ``Flag`` Avro contract, what the
rules compute on); the API answers ISO 8601 UTC strings like every other time it
gives, so the conversion happens here, at the boundary, and nowhere else.

Paging is by key, not by offset: the order is ``(opened_at, flag_id)`` and the
cursor is the key of the last flag given, so a page never repeats or skips a flag
because others opened or resolved between two requests. Every string matching
``CURSOR_PATTERN`` is a usable cursor (the OpenAPI schema promises it).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.wards import city_wards
from streams.clock import iso_utc

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
ORDERS = ("asc", "desc")
#: ``<opened_at ms>.<flag_id as UTF-8 hex>``: readable, and any match is a valid position.
CURSOR_PATTERN = r"^[0-9]{1,15}\.(?:[0-9a-f]{2}){0,256}$"

Flag = dict[str, Any]
Key = tuple[int, str]


class PageError(Exception):
    """A paging parameter the API refuses (a 400 naming the field)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    after: Key | None = None
    order: str = "asc"

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> PageRequest:
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise PageError("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        order = query.get("order", "asc").lower()
        if order not in ORDERS:
            raise PageError("order", "must be asc (oldest first) or desc (newest first)")
        cursor = query.get("cursor")
        return cls(int(raw_limit), None if cursor is None else decode_cursor(cursor), order)


def key_of(flag: Flag) -> Key:
    return int(flag["opened_at"]), str(flag["flag_id"])


def encode_cursor(key: Key) -> str:
    return f"{key[0]}.{key[1].encode().hex()}"


def decode_cursor(cursor: str) -> Key:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise PageError("cursor", "not a cursor: pass next_cursor from the previous page unchanged")
    ms, hex_id = cursor.split(".", 1)
    return int(ms), bytes.fromhex(hex_id).decode("utf-8", errors="replace")


def api_flag(flag: Flag, ward_names: Mapping[str, str] | None = None) -> Flag:
    """A stored flag as the API shows it: ISO UTC times and the ward's official name."""
    names = city_wards() if ward_names is None else ward_names
    resolved = flag.get("resolved_at")
    return dict(
        flag,
        opened_at=iso_utc(int(flag["opened_at"])),
        resolved_at=None if resolved is None else iso_utc(int(resolved)),
        ward_name=names.get(flag.get("ward_code") or "", ""),
    )


def page_of(flags: Iterable[Flag], request: PageRequest) -> dict[str, Any]:
    """One page of the (already filtered) flags, with the totals of every match.

    One pass that keeps only the page: the matches are counted as they stream by
    and the ``limit + 1`` first after the cursor are kept in a heap, so a request
    costs the size of a page in memory, whatever the number of flags (the view
    streams them from the partitions' stores).
    """
    after = request.after
    descending = request.order == "desc"
    total = 0
    by_type: Counter[str] = Counter()
    candidates: list[tuple[Key, Flag]] = []
    for flag in flags:
        total += 1
        by_type[flag["type"]] += 1
        key = key_of(flag)
        if after is not None and (key >= after if descending else key <= after):
            continue
        candidates.append((key, flag))
        if len(candidates) > 4 * (request.limit + 1):  # keep the heap's input small as well
            candidates = _first(candidates, request.limit + 1, descending)
    kept = _first(candidates, request.limit + 1, descending)
    page = [flag for _, flag in kept[: request.limit]]
    more = len(kept) > request.limit
    names = city_wards()
    return {
        "total": total,
        "by_type": dict(by_type),
        "limit": request.limit,
        "order": request.order,
        "next_cursor": encode_cursor(key_of(page[-1])) if more and page else None,
        "flags": [api_flag(f, names) for f in page],
    }


def _first(candidates: list[tuple[Key, Flag]], n: int, descending: bool) -> list[tuple[Key, Flag]]:
    pick = heapq.nlargest if descending else heapq.nsmallest
    return pick(n, candidates, key=lambda kf: kf[0])
