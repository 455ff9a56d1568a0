"""The generated city: deterministic, valid, official wards, and shaped like the city's figures."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from functools import cache
from typing import Any

import pytest

from connectors.csv_import import ImportReport, parse_time, read_events
from connectors.sdk import prepare
from connectors.simulator import events_per_day, generate_city, stream_city, write_csv
from schemas.contracts import SOURCE_OF_EVENT
from schemas.pseudonym import Pseudonymiser
from schemas.wards import ward_codes
from tests.truth import expected_kpis

START = parse_time("2024-06-01T00:00:00+07:00", "start")
KEY = Pseudonymiser(b"unit-test-key-0123456789abcdef")


@cache
def month() -> tuple[dict[str, Any], ...]:
    """A month of city traffic, big enough for proportions to settle."""
    return tuple(generate_city(seed=6, start_ms=START, days=30, events=30_000))


def of(event_type: str, **where: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in month()
        if e["event_type"] == event_type and all(e.get(k) == v for k, v in where.items())
    ]


def unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({e["event_id"]: e for e in events}.values())


def test_same_seed_gives_the_identical_city_event_ids_included():
    assert generate_city(11, START, 3, 2_000) == generate_city(11, START, 3, 2_000)


def test_different_seeds_give_different_cities():
    assert generate_city(11, START, 3, 500) != generate_city(12, START, 3, 500)


def test_an_open_ended_stream_is_stable_whatever_is_read_later():
    short = list(itertools.islice(stream_city(5, START, 1_000), 1_000))
    longer = list(itertools.islice(stream_city(5, START, 1_000), 3_000))
    assert longer[:1_000] == short


def test_a_fixed_size_run_publishes_exactly_generate_city():
    """``simulate --events N`` streams at the density that makes it generate_city's list."""
    density = events_per_day(rate=200, days=7, events=2_000, duration=None)
    streamed = list(itertools.islice(stream_city(3, START, density), 2_000))
    assert streamed == generate_city(3, START, 7, 2_000)


def test_every_agency_event_type_is_generated():
    agency_types = {t for t, src in SOURCE_OF_EVENT.items() if src is not None}
    assert {e["event_type"] for e in month()} == agency_types


def test_every_record_becomes_a_valid_pseudonymised_event():
    for record in month():
        event = prepare(record, KEY)
        assert "citizen_id" not in event
        assert event["event_id"] == record["event_id"]


def test_only_official_wards_are_used():
    assert {e["ward_code"] for e in month()} <= ward_codes()


def test_citizen_ids_are_twelve_digit_city_numbers():
    assert all(re.fullmatch(r"079\d{9}", e["citizen_id"]) for e in month())


def test_city_time_spans_about_the_requested_days():
    first = min(e["occurred_at"] for e in month())
    last_arrival = month()[-1]["occurred_at"]
    assert first == START
    assert 25 <= (last_arrival - START) / 86_400_000 <= 35


def test_insurance_sync_and_checkins_share_the_card_holders_citizen_id():
    carded = {e["citizen_id"] for e in month() if e["event_type"] == "IdCardIssued"}
    followers = [
        e
        for e in month()[:15_000]
        if e["event_type"] in ("HealthInsuranceSynced", "MedicalCheckIn")
    ]
    assert followers and all(e["citizen_id"] in carded for e in followers)


def test_chain_and_procedure_records_carry_their_dossier_id():
    dossier_types = {
        "BirthRegistered",
        "DeathRegistered",
        "ProcedureSubmitted",
        "ProcedureCompleted",
        "FuneralAllowanceGranted",
    }
    assert all(e["correlation_id"] for e in month() if e["event_type"] in dossier_types)
    completed = {e["correlation_id"] for e in of("ProcedureCompleted")}
    submitted = {e["correlation_id"] for e in of("ProcedureSubmitted")}
    assert completed <= submitted
    assert not completed & {e["correlation_id"] for e in of("BirthRegistered")}


def test_per_hundred_id_cards_the_flows_match_the_city_figures():
    cards = len(unique(of("IdCardIssued")))
    def per_100(n):
        return 100 * n / cards
    assert 50 <= per_100(len(unique(of("EIdActivated")))) <= 70
    assert 18 <= per_100(len(unique(of("EIdActivated", level="LEVEL_2")))) <= 28
    syncs = unique(of("HealthInsuranceSynced"))
    assert 85 <= per_100(len(syncs)) <= 100
    assert 0.02 <= len([s for s in syncs if s["outcome"] == "FAILED"]) / len(syncs) <= 0.06
    checkins = unique(of("MedicalCheckIn"))
    assert 80 <= per_100(len(checkins)) <= 130
    assert (
        0.02
        <= len([c for c in checkins if c["insurance_lookup"] == "NOT_FOUND"]) / len(checkins)
        <= 0.2
    )


@pytest.mark.parametrize(
    ("kind", "rate"), [("PERMANENT", 0.957), ("TEMPORARY", 0.932), ("STAY_NOTICE", 0.989)]
)
def test_residence_online_rates_match_the_reported_rates(kind: str, rate: float):
    registrations = unique(of("ResidenceRegistered", kind=kind))
    online = [r for r in registrations if r["channel"] == "ONLINE"]
    assert abs(len(online) / len(registrations) - rate) <= 0.05


def test_every_residence_kind_occurs_with_stay_notices_the_most_common():
    kinds = Counter(e["kind"] for e in unique(of("ResidenceRegistered")))
    assert set(kinds) == {"PERMANENT", "TEMPORARY", "ABSENCE", "STAY_NOTICE"}
    assert kinds.most_common(1)[0][0] == "STAY_NOTICE"


def test_procedures_are_mostly_full_online_mostly_on_time_and_some_never_completed():
    kpis = expected_kpis(month())
    assert 0.55 <= kpis["procedures_full_online_share"] <= 0.70
    assert 0.70 <= kpis["procedures_on_time_rate"] < 0.97
    assert kpis["procedures_completed"] < 0.92 * kpis["procedures_submitted"]
    levels = Counter(e["online_level"] for e in unique(of("ProcedureSubmitted")))
    assert levels["NONE"] < levels["PARTIAL"] < levels["FULL"]


def test_welfare_is_mostly_paid_to_bank_accounts():
    assert 0.80 <= expected_kpis(month())["welfare_cashless_share"] <= 0.95


def test_birth_chains_complete_about_three_in_four():
    kpis = expected_kpis(month())
    assert kpis["birth_chain_received"] >= 100
    assert 0.60 <= kpis["birth_chain_completed"] / kpis["birth_chain_received"] <= 0.85


def test_death_chains_complete_about_two_in_three():
    kpis = expected_kpis(month())
    assert kpis["death_chain_received"] >= 50
    assert 0.45 <= kpis["death_chain_completed"] / kpis["death_chain_received"] <= 0.80


def test_some_issued_cards_never_get_an_insurance_sync():
    synced = {e["citizen_id"] for e in of("HealthInsuranceSynced")}
    early_cards = [e for e in month()[:10_000] if e["event_type"] == "IdCardIssued"]
    missing = [c for c in early_cards if c["citizen_id"] not in synced]
    assert 0.02 <= len(missing) / len(early_cards) <= 0.10


def test_some_insurance_syncs_arrive_days_after_the_card():
    card_at = {e["citizen_id"]: e["occurred_at"] for e in of("IdCardIssued")}
    delays = [
        s["occurred_at"] - card_at[s["citizen_id"]]
        for s in of("HealthInsuranceSynced")
        if s["citizen_id"] in card_at
    ]
    assert any(d > 2 * 86_400_000 for d in delays)
    assert sum(d > 86_400_000 for d in delays) < 0.15 * len(delays)


def test_a_small_share_is_resent_with_the_same_event_id():
    counts = Counter(e["event_id"] for e in month())
    resent = sum(n - 1 for n in counts.values())
    assert 0.003 * len(month()) <= resent <= 0.02 * len(month())


def test_a_small_share_arrives_a_day_or_more_behind_the_others():
    newest = 0
    late = 0
    for e in month():
        if e["occurred_at"] < newest - 86_400_000:
            late += 1
        newest = max(newest, e["occurred_at"])
    assert 0.002 * len(month()) <= late <= 0.02 * len(month())


def test_csv_export_imports_back_to_the_same_events(tmp_path):
    city = generate_city(8, START, 1, 600)
    paths = write_csv(city, tmp_path)
    assert set(paths) == {e["source"] for e in city}
    report = ImportReport()
    imported = [
        event for agency, path in paths.items() for event in read_events(path, agency, KEY, report)
    ]
    assert report.ok, report.bad

    def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An empty CSV cell and a null field mean the same (the codec's default)."""
        return sorted(
            ({k: v for k, v in e.items() if v is not None} for e in events),
            key=lambda e: (e["event_id"], e["occurred_at"]),
        )

    assert comparable(imported) == comparable([prepare(r, KEY) for r in city])
