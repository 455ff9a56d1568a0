"""The city's counters summed over a worker's partitions, packed by metric × ward into rows of days.

A counter key is ``metric|ward|day`` (``streams.state.counter_key``). A year of a
city is ~8 metrics × 168 wards × 365 days per event type: at 2 M ID cards, ~490,000
keys, which a ``Counter`` holds as a string, an int and a dict slot each (~55 MiB,
issue 12). Here one row per ``metric|ward`` holds an ``array`` of 8-byte counts
indexed by the day's ordinal (~4 MiB for the same counters), and keys are built
again only as they are read. A day that is not an ISO date, or one that would
stretch a row past ``MAX_ROW_DAYS``, is kept in a small dict beside the row.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from functools import lru_cache

#: Longest span of days one row holds as an array (about 27 years); beyond, a dict.
MAX_ROW_DAYS = 10_000


@lru_cache(maxsize=65_536)
def _ordinal(day: str) -> int | None:
    try:
        return date.fromisoformat(day).toordinal() if len(day) == 10 else None
    except ValueError:
        return None


@lru_cache(maxsize=65_536)
def _day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


class _Row:
    """One metric × ward: counts by day ordinal from ``first``, and the days that fit no array."""

    __slots__ = ("first", "counts", "other")

    def __init__(self) -> None:
        self.first = 0
        self.counts = array("q")
        self.other: dict[str, int] | None = None

    def add(self, day: str, n: int) -> None:
        ordinal = _ordinal(day)
        if ordinal is not None:
            counts = self.counts
            if not counts:
                self.first = ordinal
                counts.append(n)
                return
            index = ordinal - self.first
            if 0 <= index < len(counts):
                counts[index] += n
                return
            if index >= len(counts) and index < MAX_ROW_DAYS:
                counts.frombytes(bytes(8 * (index - len(counts))))
                counts.append(n)
                return
            if index < 0 and len(counts) - index <= MAX_ROW_DAYS:
                counts[0:0] = array("q", bytes(8 * -index))
                self.first = ordinal
                counts[0] += n
                return
        other = self.other if self.other is not None else {}
        other[day] = other.get(day, 0) + n
        self.other = other

    def add_row(self, other: _Row, sign: int) -> None:
        """Add ``sign`` × another row's counts: index by index where the spans allow it."""
        theirs = other.counts
        if theirs and not self.counts:
            self.first = other.first
            self.counts = array("q", theirs) if sign == 1 else array("q", (-n for n in theirs))
        elif theirs:
            low = min(self.first, other.first)
            high = max(self.first + len(self.counts), other.first + len(theirs))
            if high - low <= MAX_ROW_DAYS:
                if low < self.first:
                    self.counts[0:0] = array("q", bytes(8 * (self.first - low)))
                    self.first = low
                self.counts.frombytes(bytes(8 * max(0, high - self.first - len(self.counts))))
                counts, offset = self.counts, other.first - self.first
                for index, n in enumerate(theirs):
                    if n:
                        counts[offset + index] += sign * n
            else:
                for index, n in enumerate(theirs):
                    if n:
                        self.add(_day(other.first + index), sign * n)
        for day, n in (other.other or {}).items():
            self.add(day, sign * n)

    def get(self, day: str) -> int:
        ordinal = _ordinal(day)
        index = -1 if ordinal is None else ordinal - self.first
        if 0 <= index < len(self.counts):
            return self.counts[index]
        return self.other.get(day, 0) if self.other else 0

    def items(self) -> Iterator[tuple[str, int]]:
        first = self.first
        for index, n in enumerate(self.counts):
            if n:
                yield _day(first + index), n
        if self.other:
            yield from ((day, n) for day, n in self.other.items() if n)


class CityCounters(Mapping[str, int]):
    """A ``Counter`` of ``metric|ward|day`` keys, as far as the view reads and writes one.

    Reads as a Counter reads: an absent key is 0, ``items`` yields the non-zero counters.
    """

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}

    def add(self, key: str, n: int) -> None:
        row_key, _, day = key.rpartition("|")
        row = self.rows.get(row_key)
        if row is None:
            row = self.rows[row_key] = _Row()
        row.add(day, n)

    def update(self, counts: Mapping[str, int] | Iterable[tuple[str, int]], sign: int = 1) -> None:
        for key, n in counts.items() if isinstance(counts, Mapping) else counts:
            if n:
                self.add(key, sign * n)

    def subtract(self, counts: Mapping[str, int] | Iterable[tuple[str, int]]) -> None:
        self.update(counts, -1)

    def add_all(self, other: CityCounters, sign: int = 1) -> None:
        """Add (``sign=-1``: take away) every counter of ``other``, a row at a time."""
        for row_key, row in other.rows.items():
            mine = self.rows.get(row_key)
            if mine is None:
                mine = self.rows[row_key] = _Row()
            mine.add_row(row, sign)

    def __getitem__(self, key: str) -> int:
        row_key, _, day = key.rpartition("|")
        row = self.rows.get(row_key)
        return 0 if row is None else row.get(day)

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]  # a stream, not a view
        for row_key, row in self.rows.items():
            for day, n in row.items():
                yield f"{row_key}|{day}", n

    def __iter__(self) -> Iterator[str]:
        for key, _ in self.items():
            yield key

    def __len__(self) -> int:
        return sum(1 for _ in self.items())
