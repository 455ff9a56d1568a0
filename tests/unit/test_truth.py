"""The truth oracle on tiny hand-written cities whose answers are worked out by hand."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.contracts import SOURCE_OF_EVENT
from tests.truth import expected_kpis

WARD_A = "26506"  # Phường Vũng Tàu
WARD_B = "26526"  # Phường Tam Thắng
#: 2024-06-01T10:00:00+07:00
MORNING = 1_717_210_800_000
HOUR = 3_600_000
DAY = 24 * HOUR


def ev(event_type: str, at: int = MORNING, ward: str = WARD_A, **fields: Any) -> dict[str, Any]:
    source = SOURCE_OF_EVENT[event_type] or "POLICE"  # heartbeats: any agency
    base = {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "source": source,
        "occurred_at": at,
        "ward_code": ward,
        "citizen_id": "079090000001",
        "correlation_id": None,
    }
    base.update(fields)
    return base


def test_a_resent_event_counts_once_and_once_as_duplicate():
    card = ev("IdCardIssued", card_kind="CCCD_CHIP")
    other = ev("IdCardIssued", card_kind="CAN_CUOC")
    kpis = expected_kpis([card, dict(card), other, dict(card)])
    assert kpis["id_cards_issued"] == 2
    assert kpis["events_total"] == 2
    assert kpis["events_duplicate"] == 2


def test_heartbeats_are_not_events():
    beat = ev("ConnectorHeartbeat", connector="x", sent_total=3, ward_code="", citizen_id="")
    kpis = expected_kpis([beat, ev("WelfarePaid", channel="CASH", amount_vnd=1)])
    assert kpis["events_total"] == 1


def test_day_is_the_city_local_day_not_the_utc_day():
    # 2024-06-01T18:30Z is 01:30 on 2 June in Ho Chi Minh City.
    late_evening_utc = 1_717_266_600_000
    events = [ev("IdCardIssued", at=late_evening_utc, card_kind="CCCD_CHIP")]
    assert expected_kpis(events, day="2024-06-02")["id_cards_issued"] == 1
    assert expected_kpis(events, day="2024-06-01")["id_cards_issued"] == 0


def test_ward_filter_keeps_only_that_ward():
    events = [
        ev("IdCardIssued", ward=WARD_A, card_kind="CCCD_CHIP"),
        ev("IdCardIssued", ward=WARD_B, card_kind="CCCD_CHIP"),
        ev("IdCardIssued", ward=WARD_B, card_kind="CCCD_CHIP"),
    ]
    assert expected_kpis(events, ward=WARD_B)["id_cards_issued"] == 2
    assert expected_kpis(events, ward=WARD_B)["events_total"] == 2


def test_completion_exactly_at_due_time_is_on_time_and_one_ms_later_is_not():
    due = MORNING + 3 * DAY
    events = [
        ev(
            "ProcedureSubmitted",
            correlation_id="HS-1",
            procedure_code="p",
            agency_code="a",
            online_level="FULL",
            due_at=due,
        ),
        ev("ProcedureCompleted", at=due, correlation_id="HS-1", outcome="APPROVED"),
        ev(
            "ProcedureSubmitted",
            correlation_id="HS-2",
            procedure_code="p",
            agency_code="a",
            online_level="PARTIAL",
            due_at=due,
        ),
        ev("ProcedureCompleted", at=due + 1, correlation_id="HS-2", outcome="APPROVED"),
        ev(
            "ProcedureSubmitted",
            correlation_id="HS-3",
            procedure_code="p",
            agency_code="a",
            online_level="PARTIAL",
            due_at=due,
        ),
    ]
    kpis = expected_kpis(events)
    assert (
        kpis["procedures_submitted"],
        kpis["procedures_completed"],
        kpis["procedures_completed_on_time"],
    ) == (3, 2, 1)
    assert kpis["procedures_on_time_rate"] == 0.5
    assert kpis["procedures_full_online_share"] == round(1 / 3, 6)


def test_completion_without_its_submission_is_completed_but_not_on_time():
    events = [ev("ProcedureCompleted", correlation_id="HS-9", outcome="REJECTED")]
    kpis = expected_kpis(events)
    assert kpis["procedures_completed"] == 1
    assert kpis["procedures_completed_on_time"] == 0


def test_on_time_completion_is_counted_on_the_completion_day():
    due = MORNING + 10 * DAY
    events = [
        ev(
            "ProcedureSubmitted",
            correlation_id="HS-1",
            procedure_code="p",
            agency_code="a",
            online_level="FULL",
            due_at=due,
        ),
        ev("ProcedureCompleted", at=MORNING + 2 * DAY, correlation_id="HS-1", outcome="APPROVED"),
    ]
    assert expected_kpis(events, day="2024-06-03")["procedures_completed_on_time"] == 1
    assert expected_kpis(events, day="2024-06-01")["procedures_completed_on_time"] == 0


def birth_chain(dossier: str, steps: int, ward: str = WARD_A) -> list[dict[str, Any]]:
    chain = [
        ev("BirthRegistered", ward=ward, correlation_id=dossier),
        ev(
            "ResidenceRegistered",
            at=MORNING + DAY,
            ward=ward,
            correlation_id=dossier,
            kind="PERMANENT",
            channel="ONLINE",
        ),
        ev(
            "HealthInsuranceCardIssued",
            at=MORNING + 3 * DAY,
            ward=ward,
            correlation_id=dossier,
            for_child_under_6=True,
        ),
    ]
    return chain[:steps]


def test_birth_chain_is_completed_only_with_all_three_steps():
    events = birth_chain("KS-1", 3) + birth_chain("KS-2", 2) + birth_chain("KS-3", 1)
    kpis = expected_kpis(events)
    assert kpis["birth_chain_received"] == 3
    assert kpis["birth_chain_completed"] == 1


def test_a_temporary_residence_does_not_complete_a_birth_chain():
    events = birth_chain("KS-1", 1) + [
        ev("ResidenceRegistered", correlation_id="KS-1", kind="TEMPORARY", channel="ONLINE"),
        ev("HealthInsuranceCardIssued", correlation_id="KS-1", for_child_under_6=True),
    ]
    assert expected_kpis(events)["birth_chain_completed"] == 0


def test_chain_steps_without_a_start_are_not_received():
    events = birth_chain("KS-1", 3)[1:]
    kpis = expected_kpis(events)
    assert (kpis["birth_chain_received"], kpis["birth_chain_completed"]) == (0, 0)


def test_completed_chain_is_dated_by_its_last_step_at_its_starting_ward():
    events = birth_chain("KS-1", 3, ward=WARD_B)
    events[2]["ward_code"] = WARD_A  # the insurance office of another ward issued the card
    assert expected_kpis(events, day="2024-06-04", ward=WARD_B)["birth_chain_completed"] == 1
    assert expected_kpis(events, day="2024-06-01")["birth_chain_completed"] == 0
    assert expected_kpis(events, day="2024-06-01", ward=WARD_B)["birth_chain_received"] == 1


def test_death_chain_needs_a_death_deregistration_not_a_move():
    moved = [
        ev("DeathRegistered", correlation_id="KT-1"),
        ev("ResidenceDeregistered", correlation_id="KT-1", reason="MOVED"),
        ev("FuneralAllowanceGranted", correlation_id="KT-1"),
    ]
    died = [
        ev("DeathRegistered", correlation_id="KT-2"),
        ev("ResidenceDeregistered", correlation_id="KT-2", reason="DEATH"),
        ev("FuneralAllowanceGranted", correlation_id="KT-2"),
    ]
    kpis = expected_kpis(moved + died)
    assert (kpis["death_chain_received"], kpis["death_chain_completed"]) == (2, 1)


def test_residence_online_rate_is_per_kind():
    events = [
        ev("ResidenceRegistered", kind="TEMPORARY", channel=c)
        for c in ("ONLINE", "ONLINE", "ONLINE", "COUNTER")
    ]
    events.append(ev("ResidenceRegistered", kind="ABSENCE", channel="COUNTER"))
    kpis = expected_kpis(events)
    assert kpis["residence_registrations"] == {
        "PERMANENT": 0,
        "TEMPORARY": 4,
        "ABSENCE": 1,
        "STAY_NOTICE": 0,
    }
    assert kpis["residence_online_rate"] == {
        "PERMANENT": None,
        "TEMPORARY": 0.75,
        "ABSENCE": 0.0,
        "STAY_NOTICE": None,
    }


def test_outcome_counters_split_syncs_checkins_and_eid_levels():
    events = [
        ev("HealthInsuranceSynced", outcome="SYNCED", failure_reason=None),
        ev("HealthInsuranceSynced", outcome="FAILED", failure_reason="x"),
        ev("HealthInsuranceSynced", outcome="SYNCED", failure_reason=None),
        ev("MedicalCheckIn", facility_code="f", insurance_lookup="FOUND"),
        ev("MedicalCheckIn", facility_code="f", insurance_lookup="NOT_FOUND"),
        ev("MedicalCheckIn", facility_code="f", insurance_lookup="ERROR"),
        ev("EIdActivated", level="LEVEL_1"),
        ev("EIdActivated", level="LEVEL_2"),
    ]
    kpis = expected_kpis(events)
    assert (kpis["insurance_synced"], kpis["insurance_sync_failed"]) == (2, 1)
    assert (kpis["checkins_by_id_card"], kpis["checkins_insurance_not_found"]) == (3, 1)
    assert kpis["eid_level2_activated"] == 1


def test_welfare_cashless_share_counts_bank_payments():
    events = [
        ev("WelfarePaid", channel=c, amount_vnd=500_000)
        for c in ("BANK_ACCOUNT", "BANK_ACCOUNT", "BANK_ACCOUNT", "CASH")
    ]
    kpis = expected_kpis(events)
    assert kpis["welfare_payments"] == 4
    assert kpis["welfare_cashless_share"] == 0.75


def test_rates_are_null_when_nothing_was_counted():
    kpis = expected_kpis([])
    assert kpis["procedures_on_time_rate"] is None
    assert kpis["welfare_cashless_share"] is None
    assert kpis["residence_online_rate"] == {k: None for k in kpis["residence_online_rate"]}
    assert kpis["events_total"] == 0
