"""Generated records as the agencies' nightly CSV exports (docs/product.md's CSV format).

One file per agency, so ``lienthong import FILE --agency X`` can load a
generated city day exactly as it would load a real export. The raw ``citizen_id``
stays in the file (the importer pseudonymises it) and ``event_id`` is kept, so a
re-sent duplicate stays a duplicate after import.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.contracts import SOURCE_OF_EVENT
from schemas.validation import payload_fields
from schemas.vocabulary import AGENCIES

ENVELOPE_COLUMNS = (
    "event_type",
    "event_id",
    "source",
    "occurred_at",
    "ward_code",
    "citizen_id",
    "correlation_id",
)
TIME_COLUMNS = ("occurred_at", "due_at")


def iso_z(ms: int) -> str:
    """UTC epoch milliseconds as ISO 8601 with ``Z`` (milliseconds kept, so times round-trip)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def agency_columns(agency: str) -> list[str]:
    """The envelope columns, then every payload field of the agency's event types."""
    columns = list(ENVELOPE_COLUMNS)
    for event_type, owner in SOURCE_OF_EVENT.items():
        if owner != agency:
            continue
        for f in payload_fields(event_type):
            if f["name"] not in columns:
                columns.append(f["name"])
    return columns


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in TIME_COLUMNS:
        return iso_z(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(events: Iterable[dict[str, Any]], directory: Path) -> dict[str, Path]:
    """Write ``<directory>/<agency>.csv`` for every agency that has records; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    by_agency: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_agency.setdefault(event["source"], []).append(event)
    paths: dict[str, Path] = {}
    for agency in AGENCIES:
        rows = by_agency.get(agency)
        if not rows:
            continue
        path = directory / f"{agency.lower()}.csv"
        columns = agency_columns(agency)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for event in rows:
                writer.writerow([_cell(name, event.get(name)) for name in columns])
        paths[agency] = path
    return paths
