"""The CSV reader: bad rows reported by line and field, good rows kept, no raw IDs out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.csv_import import ImportReport, derive_event_id, parse_time, read_events
from schemas.errors import ContractError
from schemas.pseudonym import Pseudonymiser
from schemas.wards import ward_codes

WARD = min(ward_codes())
KEY = b"csv-test-key-0123456789"
HEADER = "event_type,occurred_at,ward_code,citizen_id,correlation_id,card_kind,level\n"
RAW_IDS = ("079201000001", "079201000002", "079201000003")


def _write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "police.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path: Path, agency: str = "POLICE") -> tuple[list[dict[str, Any]], ImportReport]:
    report = ImportReport()
    events = list(read_events(path, agency, Pseudonymiser(KEY), report))
    return events, report


def _card(citizen: str, when: str = "2024-06-01T08:00:00+07:00", ward: str = WARD) -> str:
    return f"IdCardIssued,{when},{ward},{citizen},,CCCD_CHIP,"


def test_good_rows_become_valid_events(tmp_path: Path) -> None:
    events, report = _read(_write(tmp_path, _card(RAW_IDS[0]), f"EIdActivated,2024-06-01T01:00:00Z,{WARD},{RAW_IDS[1]},,,LEVEL_2"))
    assert report.ok
    assert [(e["event_type"], e["source"], e["ward_code"]) for e in events] == [
        ("IdCardIssued", "POLICE", WARD), ("EIdActivated", "POLICE", WARD)
    ]
    assert events[0]["occurred_at"] == parse_time("2024-06-01T01:00:00Z", "occurred_at")


def test_bad_rows_are_reported_with_line_and_field_and_good_rows_still_yielded(tmp_path: Path) -> None:
    path = _write(tmp_path, _card(RAW_IDS[0]), _card(RAW_IDS[1], ward="99999"), _card(RAW_IDS[2]))
    events, report = _read(path)
    assert len(events) == 2
    assert [(b.line, b.field) for b in report.bad] == [(3, "ward_code")]


def test_naive_times_are_refused(tmp_path: Path) -> None:
    _, report = _read(_write(tmp_path, _card(RAW_IDS[0], when="2024-06-01T08:00:00")))
    assert [(b.line, b.field) for b in report.bad] == [(2, "occurred_at")]
    assert "offset" in report.bad[0].reason


@pytest.mark.parametrize("citizen", ["12345", "07920100000A", ""])
def test_a_citizen_id_that_is_not_12_digits_is_a_bad_row(tmp_path: Path, citizen: str) -> None:
    _, report = _read(_write(tmp_path, _card(citizen)))
    assert [(b.line, b.field) for b in report.bad] == [(2, "citizen_id" if citizen else "citizen_ref")]


def test_an_event_type_of_another_agency_is_a_bad_row(tmp_path: Path) -> None:
    _, report = _read(_write(tmp_path, _card(RAW_IDS[0])), agency="HEALTH")
    assert [(b.line, b.field) for b in report.bad] == [(2, "event_type")]


def test_a_header_without_event_type_is_reported_on_line_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("type,occurred_at\nIdCardIssued,2024-06-01T00:00:00Z\n", encoding="utf-8")
    events, report = _read(path)
    assert events == []
    assert [(b.line, b.field) for b in report.bad] == [(1, "event_type")]


def test_the_same_file_gives_the_same_derived_event_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, *(_card(c) for c in RAW_IDS))
    first, _ = _read(path)
    second, _ = _read(path)
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len({e["event_id"] for e in first}) == 3


def test_derived_event_id_depends_on_content() -> None:
    event = {"event_type": "IdCardIssued", "citizen_ref": "ab" * 32, "occurred_at": 1}
    assert derive_event_id(event) != derive_event_id({**event, "occurred_at": 2})


def test_raw_citizen_id_never_appears_in_the_events(tmp_path: Path) -> None:
    events, _ = _read(_write(tmp_path, *(_card(c) for c in RAW_IDS)))
    assert all("citizen_id" not in e for e in events)
    text = repr(events)
    assert not any(raw in text for raw in RAW_IDS)
    assert [e["citizen_ref"] for e in events] == [Pseudonymiser(KEY).ref(c) for c in RAW_IDS]


def test_parse_time_z_and_offset_name_the_same_instant() -> None:
    assert parse_time("2024-06-01T01:00:00Z", "t") == parse_time("2024-06-01T08:00:00+07:00", "t")


def test_parse_time_refuses_text_that_is_not_a_time() -> None:
    with pytest.raises(ContractError) as caught:
        parse_time("yesterday", "due_at")
    assert caught.value.field == "due_at"


# -- files a new user really has: wrong encoding, missing columns, nothing at all ------
def test_a_byte_that_is_not_utf8_is_reported_on_its_line_and_column_and_other_rows_go_in(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + (_card(RAW_IDS[0]) + "\n").encode()
                     + f"IdCardIssued,2024-06-01T08:00:00+07:00,{WARD},{RAW_IDS[1]},Ph\xe1,CCCD_CHIP,\n".encode("latin-1")
                     + (_card(RAW_IDS[2]) + "\n").encode())
    events, report = _read(path)
    assert len(events) == 2
    assert [(b.line, b.field) for b in report.bad] == [(3, "correlation_id")]
    assert "0xE1" in report.bad[0].reason and "UTF-8" in report.bad[0].reason


def test_a_file_without_the_citizen_id_column_is_one_message_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "no-citizen.csv"
    path.write_text("event_type,occurred_at,ward_code,card_kind\n"
                    + "".join(f"IdCardIssued,2024-06-01T01:00:00Z,{WARD},CCCD_CHIP\n" for _ in range(5)))
    events, report = _read(path)
    assert events == []
    assert [(b.line, b.field) for b in report.bad] == [(1, "citizen_id")]
    assert "no citizen_id column" in str(report.bad[0])


def test_an_empty_file_is_one_message_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    events, report = _read(path)
    assert events == []
    assert len(report.bad) == 1 and report.bad[0].line == 1
    assert "empty" in report.bad[0].reason and "citizen_id" in report.bad[0].reason

