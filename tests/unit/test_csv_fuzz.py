"""The importer against arbitrary bytes: it reports bad rows, it never raises."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.csv_import import ImportReport, read_events
from schemas.pseudonym import Pseudonymiser
from schemas.wards import ward_codes

KEY = b"csv-fuzz-key-0123456789"
WARD = min(ward_codes())
HEADER = b"event_type,occurred_at,ward_code,citizen_id,correlation_id,card_kind,level\n"
GOOD = f"IdCardIssued,2024-06-01T08:00:00+07:00,{WARD},079201000001,,CCCD_CHIP,\n".encode()

#: Bytes that look like CSV often enough to reach the row checks, not only the header's.
csv_like = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from([b",", b"\n", b"\r\n", b'"', b"\x00", b"\xff", b"\xe1",
                                                        b"IdCardIssued", b"2024-06-01T08:00:00Z", GOOD])),
    max_size=30,
).map(b"".join)


def _import(tmp: Path, data: bytes) -> tuple[list[object], ImportReport]:
    path = tmp / "fuzz.csv"
    path.write_bytes(data)
    report = ImportReport()
    events = list(read_events(path, "POLICE", Pseudonymiser(KEY), report))
    return events, report


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=400), csv_like, csv_like.map(lambda body: HEADER + body)))
def test_arbitrary_bytes_only_ever_give_bad_rows_never_an_exception(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events, report = _import(Path(tmp), data)
    assert all(bad.line >= 1 and bad.field and bad.reason for bad in report.bad)
    assert all(event["source"] == "POLICE" for event in events)  # type: ignore[index]


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(min_size=1, max_size=60))
def test_a_junk_line_between_good_rows_costs_only_itself(junk: bytes) -> None:
    data = HEADER + GOOD + junk.replace(b"\n", b" ").replace(b"\r", b" ").replace(b'"', b" ") + b"\n" + GOOD
    with tempfile.TemporaryDirectory() as tmp:
        events, report = _import(Path(tmp), data)
    assert len(events) == 2  # both good rows, whatever the junk line was
    assert all(bad.line == 3 for bad in report.bad)
