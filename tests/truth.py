"""The truth: docs/product.md's KPIs computed straight from raw records, with no hub involved.

An *independent* oracle on purpose: it imports nothing from ``streams``, reads
the definitions from docs/product.md again and computes them the obvious, whole-list
way (no partitions, no stores, no increments), so when a worker's
``/api/kpis`` equals it, two different readings of the contract agree.

Rules (docs/product.md):
- An event id seen again is a duplicate: counted in ``events_duplicate`` (at its
  own ward and day), never again anywhere else. Heartbeats are not events.
- "Day" is the local day of ``occurred_at`` in Asia/Ho_Chi_Minh.
- A dossier is *completed on time* when its completion happened at or before the
  submission's ``due_at``; it is counted at the completion's ward and day.
- A chain (birth → permanent residence → child insurance card; death → residence
  deletion for death → funeral allowance) is *received* at its first step's ward
  and day, and *completed* once every step has happened, at the first step's ward
  and on the day of its last step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

CITY_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
RESIDENCE_KINDS = ("PERMANENT", "TEMPORARY", "ABSENCE", "STAY_NOTICE")

#: The steps of each interconnected chain, as predicates on one event.
CHAINS: dict[str, tuple[tuple[str, Any], ...]] = {
    "birth": (
        ("registered", lambda e: e["event_type"] == "BirthRegistered"),
        (
            "residence",
            lambda e: e["event_type"] == "ResidenceRegistered" and e.get("kind") == "PERMANENT",
        ),
        (
            "insurance",
            lambda e: (
                e["event_type"] == "HealthInsuranceCardIssued"
                and e.get("for_child_under_6") is True
            ),
        ),
    ),
    "death": (
        ("registered", lambda e: e["event_type"] == "DeathRegistered"),
        (
            "deregistered",
            lambda e: e["event_type"] == "ResidenceDeregistered" and e.get("reason") == "DEATH",
        ),
        ("allowance", lambda e: e["event_type"] == "FuneralAllowanceGranted"),
    ),
}


def city_day(ms: int) -> str:
    """ISO date of a UTC millisecond time in the city's zone."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(CITY_ZONE).date().isoformat()


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _unique(events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(first sightings, re-sent copies) in list order; heartbeats dropped."""
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    repeats: list[dict[str, Any]] = []
    for event in events:
        if event["event_type"] == "ConnectorHeartbeat":
            continue
        if event["event_id"] in seen:
            repeats.append(event)
        else:
            seen.add(event["event_id"])
            unique.append(event)
    return unique, repeats


def _chain_counts(unique: list[dict[str, Any]], keep: Any) -> Counter[str]:
    """``<chain>_chain_received`` / ``_completed`` for the chains whose place/day pass ``keep``."""
    steps: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for event in unique:
        dossier = event.get("correlation_id")
        if not dossier:
            continue
        for chain, chain_steps in CHAINS.items():
            for step, matches in chain_steps:
                if matches(event):
                    steps.setdefault((chain, dossier), {}).setdefault(step, event)
    counts: Counter[str] = Counter()
    for (chain, _), done in steps.items():
        first_step = CHAINS[chain][0][0]
        start = done.get(first_step)
        if start is None:
            continue  # later steps of a chain whose start never came: nothing received
        if keep(start["ward_code"], start["occurred_at"]):
            counts[f"{chain}_chain_received"] += 1
        if len(done) == len(CHAINS[chain]):
            last_at = max(e["occurred_at"] for e in done.values())
            if keep(start["ward_code"], last_at):
                counts[f"{chain}_chain_completed"] += 1
    return counts


def _on_time(unique: list[dict[str, Any]], keep: Any) -> int:
    submitted: dict[str, dict[str, Any]] = {}
    completed: dict[str, dict[str, Any]] = {}
    for event in unique:
        if event["event_type"] == "ProcedureSubmitted":
            submitted.setdefault(event["correlation_id"], event)
        elif event["event_type"] == "ProcedureCompleted":
            completed.setdefault(event["correlation_id"], event)
    return sum(
        1
        for dossier, done in completed.items()
        if dossier in submitted
        and done["occurred_at"] <= submitted[dossier]["due_at"]
        and keep(done["ward_code"], done["occurred_at"])
    )


def expected_kpis(
    raw_events: Iterable[dict[str, Any]], ward: str | None = None, day: str | None = None
) -> dict[str, Any]:
    """The KPIs a correct hub reports for these records (optionally one ward and/or local day).

    ``flags_open`` and ``as_of`` are not predicted: they depend on SLAs and clocks.
    ``events_dead_lettered`` is 0 because raw generated records are all valid.
    """

    def keep(event_ward: str, at_ms: int) -> bool:
        return (ward is None or event_ward == ward) and (day is None or city_day(at_ms) == day)

    unique, repeats = _unique(raw_events)
    mine = [e for e in unique if keep(e["ward_code"], e["occurred_at"])]
    of: dict[str, list[dict[str, Any]]] = {}
    for event in mine:
        of.setdefault(event["event_type"], []).append(event)

    def count(event_type: str, **where: Any) -> int:
        return sum(
            1 for e in of.get(event_type, []) if all(e.get(k) == v for k, v in where.items())
        )

    registrations = {k: count("ResidenceRegistered", kind=k) for k in RESIDENCE_KINDS}
    online = {k: count("ResidenceRegistered", kind=k, channel="ONLINE") for k in RESIDENCE_KINDS}
    submitted = count("ProcedureSubmitted")
    completed = count("ProcedureCompleted")
    on_time = _on_time(unique, keep)
    welfare = count("WelfarePaid")
    chains = _chain_counts(unique, keep)
    return {
        "id_cards_issued": count("IdCardIssued"),
        "eid_level2_activated": count("EIdActivated", level="LEVEL_2"),
        "insurance_synced": count("HealthInsuranceSynced", outcome="SYNCED"),
        "insurance_sync_failed": count("HealthInsuranceSynced", outcome="FAILED"),
        "checkins_by_id_card": count("MedicalCheckIn"),
        "checkins_insurance_not_found": count("MedicalCheckIn", insurance_lookup="NOT_FOUND"),
        "residence_registrations": registrations,
        "residence_online_rate": {k: _rate(online[k], registrations[k]) for k in RESIDENCE_KINDS},
        "procedures_submitted": submitted,
        "procedures_completed": completed,
        "procedures_completed_on_time": on_time,
        "procedures_on_time_rate": _rate(on_time, completed),
        "procedures_full_online_share": _rate(
            count("ProcedureSubmitted", online_level="FULL"), submitted
        ),
        "birth_chain_received": chains["birth_chain_received"],
        "birth_chain_completed": chains["birth_chain_completed"],
        "death_chain_received": chains["death_chain_received"],
        "death_chain_completed": chains["death_chain_completed"],
        "welfare_payments": welfare,
        "welfare_cashless_share": _rate(count("WelfarePaid", channel="BANK_ACCOUNT"), welfare),
        "events_total": len(mine),
        "events_duplicate": sum(1 for e in repeats if keep(e["ward_code"], e["occurred_at"])),
        "events_dead_lettered": 0,
    }
