"""What each event adds to the city's counters (metric × ward × local day).

Counters are increments only, so they commute and fold in any order; the joins
that a KPI needs (a dossier's submission and completion, a chain's steps) are kept
in partition stores until they complete. Days and wards of joined counts are taken
from event times, never from processing order, so a replay gives the same numbers.
"""

from __future__ import annotations

from typing import Any

from schemas.contracts import LIVENESS_SIGNALS
from streams.clock import local_day
from streams.state import Change

Event = dict[str, Any]

#: Chain kind → (starting event type, ordered steps). A step is matched by a
#: predicate on the event; the first step is the start.
CHAIN_STEPS: dict[str, tuple[str, ...]] = {
    "BIRTH": ("birth_registered", "permanent_residence", "child_insurance_card"),
    "DEATH": ("death_registered", "residence_deregistered", "funeral_allowance"),
}


def chain_step(event: Event) -> tuple[str, str] | None:
    """(chain kind, step) an event fulfils, when it carries a dossier id."""
    if not event.get("correlation_id"):
        return None
    kind = event["event_type"]
    if kind == "BirthRegistered":
        return "BIRTH", "birth_registered"
    if kind == "ResidenceRegistered" and event.get("kind") == "PERMANENT":
        return "BIRTH", "permanent_residence"
    if kind == "HealthInsuranceCardIssued" and event.get("for_child_under_6"):
        return "BIRTH", "child_insurance_card"
    if kind == "DeathRegistered":
        return "DEATH", "death_registered"
    if kind == "ResidenceDeregistered" and event.get("reason") == "DEATH":
        return "DEATH", "residence_deregistered"
    if kind == "FuneralAllowanceGranted":
        return "DEATH", "funeral_allowance"
    return None


def _metrics_of(kind: str, event: Event) -> tuple[str, ...]:
    """The event-type counters one event adds 1 to (besides totals, type and agency)."""
    if kind == "IdCardIssued":
        return ("id_cards_issued",)
    if kind == "HealthInsuranceSynced":
        return ("insurance_synced",) if event["outcome"] == "SYNCED" else ("insurance_sync_failed",)
    if kind == "EIdActivated":
        return ("eid_activated", "eid_level2_activated") if event["level"] == "LEVEL_2" else ("eid_activated",)
    if kind == "MedicalCheckIn":
        if event["insurance_lookup"] == "NOT_FOUND":
            return ("checkins_by_id_card", "checkins_insurance_not_found")
        return ("checkins_by_id_card",)
    if kind == "ResidenceRegistered":
        registered = f"residence_registrations:{event['kind']}"
        if event["channel"] == "ONLINE":
            return (registered, f"residence_online:{event['kind']}")
        return (registered,)
    if kind == "ResidenceDeregistered":
        return (f"residence_deregistrations:{event['reason']}",)
    if kind == "HealthInsuranceCardIssued":
        return ("insurance_cards_issued",)
    if kind == "JudicialRecordIssued":
        return (f"judicial_records:{event['channel']}",)
    if kind == "ProcedureSubmitted":
        if event["online_level"] == "FULL":
            return ("procedures_submitted", "procedures_full_online")
        return ("procedures_submitted",)
    if kind == "ProcedureCompleted":
        return ("procedures_completed",)
    if kind == "WelfarePaid":
        if event["channel"] == "BANK_ACCOUNT":
            return ("welfare_payments", "welfare_cashless")
        return ("welfare_payments",)
    if kind == "FuneralAllowanceGranted":
        return ("funeral_allowances",)
    return ()


def count_event(event: Event, change: Change) -> None:
    """Add one first-seen, valid event to the counters."""
    kind = event["event_type"]
    ward = event["ward_code"]
    day = local_day(event["occurred_at"])
    if kind in LIVENESS_SIGNALS:  # a heartbeat: only its own counter, citywide (it has no ward)
        change.count("heartbeats", "", day)
        return
    # Every counter of an event shares its "|ward|day" key suffix: build it once and
    # add to the change's increments directly (same keys as Change.count), since
    # this runs for every event.
    inc = change.inc
    tail = f"|{ward}|{day}"
    for key in ("events_total" + tail, "events:" + kind + tail, "agency:" + event["source"] + tail):
        inc[key] = inc.get(key, 0) + 1
    for metric in _metrics_of(kind, event):
        key = metric + tail
        inc[key] = inc.get(key, 0) + 1
    if kind == "WelfarePaid":
        key = "welfare_amount_vnd" + tail
        inc[key] = inc.get(key, 0) + int(event["amount_vnd"])
    elif kind == "ProcedureSubmitted":
        _dossier(event, change, "submitted")
    elif kind == "ProcedureCompleted":
        _dossier(event, change, "completed")
    step = chain_step(event)
    if step is not None:
        _chain(event, change, *step)


def _dossier(event: Event, change: Change, part: str) -> None:
    """Join a dossier's submission and completion to count completion on time."""
    dossier_id = event["correlation_id"]
    dossier = dict(change.get("dossiers", dossier_id, {}))
    if part in dossier:
        return  # a second completion/submission of one dossier adds nothing to the join
    dossier[part] = {
        "event_id": event["event_id"],
        "at": event["occurred_at"],
        "ward": event["ward_code"],
        "due_at": event.get("due_at"),
        "agency": event.get("agency_code"),
    }
    if "submitted" in dossier and "completed" in dossier:
        done = dossier["completed"]
        if done["at"] <= dossier["submitted"]["due_at"]:
            change.count("procedures_completed_on_time", done["ward"], local_day(done["at"]))
        dossier["closed"] = True
    change.set("dossiers", dossier_id, dossier)


def _chain(event: Event, change: Change, chain: str, step: str) -> None:
    """Track an interconnected procedure; count it when started and when all steps are done."""
    dossier_id = event["correlation_id"]
    entry = dict(change.get("chains", dossier_id, {"kind": chain, "steps": {}}))
    steps = dict(entry["steps"])
    if step in steps:
        return
    steps[step] = {"event_id": event["event_id"], "at": event["occurred_at"], "ward": event["ward_code"]}
    entry["steps"] = steps
    first = CHAIN_STEPS[chain][0]
    if step == first:
        entry["ward"] = event["ward_code"]
        entry["started_at"] = event["occurred_at"]
        change.count(f"{chain.lower()}_chain_received", event["ward_code"], local_day(event["occurred_at"]))
    if all(s in steps for s in CHAIN_STEPS[chain]) and not entry.get("completed"):
        entry["completed"] = True
        last_at = max(s["at"] for s in steps.values())
        entry["completed_at"] = last_at
        change.count(f"{chain.lower()}_chain_completed", entry["ward"], local_day(last_at))
    change.set("chains", dossier_id, entry)
