"""The legacy nightly export: a CSV file of agency records, imported as events.

Format (docs/product.md): UTF-8, header row, ``event_type``, the envelope fields and
the payload fields, with the raw ``citizen_id`` in place of ``citizen_ref``. A row
without ``event_id`` gets one derived from its content (after pseudonymising), so
importing a file twice publishes the same ids and the hub counts them once.

Whatever the bytes, reading a file never raises: a byte that is not UTF-8, a row
the csv module cannot parse or a value no contract accepts becomes a bad row with
its line and column, and every other row still goes in. A header without a
column every row needs is one message, not one per line.
"""

from __future__ import annotations

import csv
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from connectors.sdk import Publisher, prepare
from schemas.contracts import SOURCE_OF_EVENT
from schemas.errors import ContractError
from schemas.pseudonym import Pseudonymiser
from schemas.validation import Event, payload_fields

#: Namespace of derived event ids (uuid5); fixed forever, or re-imports would double count.
IMPORT_NAMESPACE = uuid.UUID("5b0f6c1e-8a7d-4c1b-9a52-6c1f3e2d9b10")
TIME_FIELDS = ("occurred_at", "due_at")
#: Columns the header must have for any row to be importable (``citizen_ref`` may
#: stand in for ``citizen_id`` when an agency pseudonymises itself).
REQUIRED_COLUMNS = ("event_type", "occurred_at", "citizen_id")
#: Lone surrogates: what ``surrogateescape`` turns undecodable bytes into.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


@dataclass
class BadRow:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    imported: int = 0
    bad: list[BadRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def parse_time(value: str, name: str) -> int:
    """ISO 8601 with ``Z`` or an offset → UTC epoch milliseconds; naive times are refused."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ContractError(name, f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ContractError(name, f"{value!r} has no UTC offset (add Z or +07:00)")
    return int(moment.timestamp() * 1000)


def _convert(event_type: str, row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {"event_type": event_type}
    for name in ("event_id", "source", "ward_code", "citizen_id", "citizen_ref", "correlation_id"):
        value = (row.get(name) or "").strip()
        if value:
            record[name] = value
    if not (row.get("occurred_at") or "").strip():
        raise ContractError("occurred_at", "is required", event_type)
    record["occurred_at"] = parse_time(row["occurred_at"], "occurred_at")
    for f in payload_fields(event_type):
        name, ftype = f["name"], f["type"]
        raw = (row.get(name) or "").strip()
        if raw == "":
            continue
        if isinstance(ftype, dict) and ftype.get("logicalType") == "timestamp-millis":
            record[name] = parse_time(raw, name)
        elif ftype == "long":
            try:
                record[name] = int(raw)
            except ValueError:
                raise ContractError(name, f"{raw!r} is not an integer", event_type) from None
        elif ftype == "boolean":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ContractError(name, f"{raw!r} is not true/false", event_type)
            record[name] = raw.lower() in ("true", "1", "yes")
        else:
            record[name] = raw
    return record


def derive_event_id(event: Event) -> str:
    """A stable id from the row's content (pseudonymised: never the raw number)."""
    content = "|".join(f"{k}={event[k]}" for k in sorted(event) if k != "event_id")
    return str(uuid.uuid5(IMPORT_NAMESPACE, content))


def _not_utf8(value: str) -> str | None:
    """Why ``value`` (decoded with surrogateescape) is not UTF-8, or None if it is."""
    found = _NOT_UTF8.search(value)
    if found is None:
        return None
    byte = ord(found.group()) - 0xDC00
    return f"byte 0x{byte:02X} at character {found.start() + 1} is not valid UTF-8 (save the file as UTF-8)"


def _check_header(fieldnames: Sequence[str] | None) -> BadRow | None:
    """The one message for a header no row can be imported under."""
    if not fieldnames:
        expected = ", ".join(REQUIRED_COLUMNS)
        return BadRow(1, "header", f"the file is empty: expected a header row with at least {expected}")
    for name in fieldnames:
        reason = _not_utf8(name)
        if reason:
            return BadRow(1, "header", reason)
    names = {name.strip() for name in fieldnames}
    for column in REQUIRED_COLUMNS:
        if column not in names and not (column == "citizen_id" and "citizen_ref" in names):
            return BadRow(1, column, f"the header row has no {column} column")
    return None


def _check_utf8(row: dict[str | None, Any]) -> None:
    for column, value in row.items():
        for text in value if isinstance(value, list) else [value]:
            reason = _not_utf8(text) if isinstance(text, str) else None
            if reason:
                raise ContractError(column or "(extra column)", reason)


def _event_of(row: dict[str, str], agency: str, pseudonymiser: Pseudonymiser) -> Event:
    _check_utf8(row)  # type: ignore[arg-type]
    event_type = (row.get("event_type") or "").strip()
    if event_type not in SOURCE_OF_EVENT:
        raise ContractError("event_type", f"unknown event type {event_type!r}")
    owner = SOURCE_OF_EVENT[event_type]
    if owner is not None and owner != agency:
        raise ContractError("event_type", f"{event_type} is published by {owner}, not {agency}")
    if (row.get("source") or agency).strip() != agency:
        raise ContractError("source", f"row says {row['source']!r} but the import is for {agency}")
    record = _convert(event_type, row)
    record["source"] = agency
    if "citizen_id" in record:
        record["citizen_ref"] = pseudonymiser.ref(record.pop("citizen_id"))
    if "event_id" not in record:
        record["event_id"] = derive_event_id(record)
    return prepare(record, None)


def read_events(
    path: Path, agency: str, pseudonymiser: Pseudonymiser, report: ImportReport
) -> Iterator[Event]:
    """Valid events of the file; every bad row is added to ``report`` with its line."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long field is a bad value, not a crash
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        try:
            header_problem = _check_header(reader.fieldnames)
        except csv.Error as exc:
            header_problem = BadRow(1, "header", f"not a CSV header row ({exc})")
        if header_problem is not None:
            report.bad.append(header_problem)
            return
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                report.bad.append(BadRow(reader.line_num, "row", f"not a CSV row ({exc})"))
                continue
            try:
                yield _event_of(row, agency, pseudonymiser)
            except ContractError as exc:
                report.bad.append(BadRow(reader.line_num, exc.field, exc.reason))


def count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def import_csv(
    path: Path,
    agency: str,
    publisher: Publisher,
    pseudonymiser: Pseudonymiser,
    *,
    progress: bool = True,
) -> ImportReport:
    """Publish every good row of ``path``; return what went in and what was refused."""
    report = ImportReport()
    total = count_rows(path)
    with tqdm(total=total, unit="row", desc=f"import {path.name}", disable=not progress) as bar:
        for event in read_events(path, agency, pseudonymiser, report):
            publisher.publish(event)
            report.imported += 1
            bar.update(1)
        bar.n = total
        bar.refresh()
    publisher.flush()
    return report
