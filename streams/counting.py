"""What each event adds to the city's counters (metric × ward × local day): the ``Counting`` reaction.

The counters of an event type are declared in its contract (``schemas/contracts.py``,
:class:`~schemas.contracts.Count`); this module adds them, plus the totals every
event adds and the joins below.

Counters are increments only, so they commute and fold in any order; the joins
that a KPI needs (a dossier's submission and completion, a chain's steps) are kept
in partition stores until they complete. Days and wards of joined counts are taken
from event times, never from processing order, so a replay gives the same numbers.
"""

from __future__ import annotations

from typing import Any

from schemas.contracts import CONTRACTS, LIVENESS_SIGNALS, Count
from schemas.errors import ContractError
from streams.clock import local_day
from streams.reaction import BaseReaction
from streams.state import Change, SourcePosition
from streams.stores import StoreName

Event = dict[str, Any]

#: A dossier's submission and completion, joined to count completion on time.
DOSSIERS = StoreName("dossiers")
#: An interconnected procedure's steps (birth, death), joined to count chains completed.
CHAINS = StoreName("chains")

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


def _plans() -> dict[str, tuple[tuple[str, ...], tuple[Count, ...]]]:
    """Event type → (counters adding 1 to every event, counters that depend on it), from the table."""
    plans = {}
    for contract in CONTRACTS:
        every = [c for c in contract.counters if c.label is None and c.when is None and c.unless is None
                 and c.amount is None]
        plans[contract.event_type] = (tuple(c.metric for c in every),
                                      tuple(c for c in contract.counters if c not in every))
    return plans


_PLANS = _plans()


def metrics_of(event: Event) -> list[tuple[str, int]]:
    """The event-type counters (name, amount) one event adds to, as its contract declares them."""
    plain, conditional = _PLANS.get(event["event_type"], ((), ()))
    found = [(metric, 1) for metric in plain]
    for counter in conditional:
        added = counter.of(event)
        if added is not None:
            found.append(added)
    return found


def count_event(event: Event, change: Change) -> None:
    """Add one first-seen, valid event to the counters its contract declares, and join dossiers and chains."""
    kind = event["event_type"]
    ward = event["ward_code"]
    day = local_day(event["occurred_at"])
    inc = change.inc
    # Every counter of an event shares its "|ward|day" key suffix: build it once and
    # add to the change's increments directly (same keys as Change.count), since
    # this runs for every event.
    if kind in LIVENESS_SIGNALS:  # a liveness signal adds only its own counters, citywide
        tail = f"||{day}"
    else:
        tail = f"|{ward}|{day}"
        for key in ("events_total" + tail, "events:" + kind + tail, "agency:" + event["source"] + tail):
            inc[key] = inc.get(key, 0) + 1
    for metric, n in metrics_of(event):
        key = metric + tail
        inc[key] = inc.get(key, 0) + n
    if kind in LIVENESS_SIGNALS:
        return
    if kind == "ProcedureSubmitted":
        _dossier(event, change, "submitted")
    elif kind == "ProcedureCompleted":
        _dossier(event, change, "completed")
    step = chain_step(event)
    if step is not None:
        _chain(event, change, *step)


class Counting(BaseReaction):
    """The city's counters: what each event, duplicate and refusal adds (a reaction like the flag rules)."""

    stores = (DOSSIERS, CHAINS)

    def on_event(self, event: Event, change: Change) -> None:
        count_event(event, change)

    def on_duplicate(self, event: Event, change: Change) -> None:
        change.count("events_duplicate", event["ward_code"], local_day(event["occurred_at"]))

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        change.count("events_dead_lettered", "", local_day(where.timestamp))

    def on_beyond_horizon(self, event: Event, change: Change) -> None:
        """Not counted as an event (its id may be forgotten), but as refused: it is dead-lettered."""
        change.count("events_beyond_horizon", event["ward_code"], local_day(event["occurred_at"]))
        assert change.source is not None
        change.count("events_dead_lettered", "", local_day(change.source.timestamp))


def _dossier(event: Event, change: Change, part: str) -> None:
    """Join a dossier's submission and completion to count completion on time."""
    dossier_id = event["correlation_id"]
    dossier = dict(change.get(DOSSIERS, dossier_id, {}))
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
    change.set(DOSSIERS, dossier_id, dossier)


def _chain(event: Event, change: Change, chain: str, step: str) -> None:
    """Track an interconnected procedure; count it when started and when all steps are done."""
    dossier_id = event["correlation_id"]
    entry = dict(change.get(CHAINS, dossier_id, {"kind": chain, "steps": {}}))
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
    change.set(CHAINS, dossier_id, entry)
