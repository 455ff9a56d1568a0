"""The merge stage: one ``SYNC_MISSING`` roll-up per agency × ward × day, whatever the partitions.

State is partitioned by citizen, so the ID cards of one ward and day are spread
over every partition, and each partition decides its own share of a roll-up
(``streams.flags.rollups``): its *partial*, an absolute record stored with the
partition's delta. The worker sends each partial it writes to the internal
topic ``lienthong.rollup-partials`` (key ``ward|day|partition``, so compaction
keeps the latest of each partition; sent to the partition of ``ward|day``, so
every partial of one ward × day is read by one merge agent). The merge agent
keeps, per ward × day, the latest partial of each partition in its own table
(``rollups-merged``, with a changelog) and announces the merged flag on
``lienthong.alerts`` when its status changes (:func:`merge_step`).

Why this is exact without transactions: a partial replaces the one before it
(it is not an increment), so a partial read twice — a replayed source message
re-sends its delta's partials, a merge agent restarted before its commit reads
them again — leaves the table as it was, and only re-announces the last
announcement (alerts are at-least-once, deduped by ``flag_id`` + ``status``).
The table write and the alert are both flushed before the partial's offset is
committed (as for the delta table, ``docs/exactly-once.md`` §3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from schemas.partitioning import partition_for
from streams.flags.records import Flag
from streams.flags.rollups import Partial, merge_step

#: The merge agent's table: per ``ward|day``, the latest partial of each partition and the last announcement.
MERGE_TABLE = "rollups-merged"


def group_of(partial: Partial) -> str:
    return f"{partial['ward']}|{partial['day']}"


def partial_messages(partials: Mapping[str, Partial | None], partitions: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of each partial a delta wrote, for ``lienthong.rollup-partials``."""
    out = []
    for group, partial in partials.items():
        if partial is None:
            continue
        key = f"{group}|{partial['partition']}".encode()
        out.append((key, orjson.dumps(partial), partition_for(group.encode(), partitions)))
    return out


def merge(value: bytes, stored: Callable[[str], bytes | None]) -> tuple[str, bytes | None, list[Flag]]:
    """One partial read by the merge agent: (group, new table value or None if unchanged, announcements).

    ``stored``: the table's value of a group (None: nothing yet).
    """
    partial: Partial = orjson.loads(value)
    raw = stored(group_of(partial))
    entry: dict[str, Any] | None = orjson.loads(raw) if raw is not None else None
    updated, announce = merge_step(entry, partial)
    return group_of(partial), (None if updated is entry else orjson.dumps(updated)), announce
