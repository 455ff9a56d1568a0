"""Flags about dossiers: interconnected chains that stall, procedures that run over.

* ``CHAIN_STALLED`` — a birth chain (birth → permanent residence → child insurance
  card) or death chain (death → residence deletion → funeral allowance) with a
  step still missing when the watermark passes chain start + ``BIRTH_CHAIN`` /
  ``DEATH_CHAIN``; ``detail`` names the step, ``agency`` the agency that owes it.
  Resolved when the last late step arrives.
* ``PROCEDURE_OVERDUE`` — a portal dossier not completed by its ``due_at``;
  resolved by the late completion.

Both read the joins :mod:`streams.counting` already keeps (stores ``chains`` and
``dossiers``), so no fact is stored twice.
"""

from __future__ import annotations

from typing import Any

from streams.clock import iso_utc
from streams.counting import CHAIN_STEPS, chain_step
from streams.flags.deadlines import Deadlines
from streams.flags.records import Flag, flag_id, make_flag, reconcile
from streams.flags.rules import BaseRule, Event, watermark_of
from streams.sla import sla_ms
from streams.state import Change

#: Agency that owes each step after the first.
STEP_AGENCY: dict[str, str] = {
    "permanent_residence": "POLICE",
    "child_insurance_card": "SOCIAL_INSURANCE",
    "residence_deregistered": "POLICE",
    "funeral_allowance": "LABOUR",
}


def chain_stalled(dossier_id: str, chain: dict[str, Any], watermark: int, sla: int) -> Flag | None:
    """A chain's flag from its steps' event times: the first step missing or done after the deadline."""
    started_at = chain.get("started_at")
    if started_at is None:
        return None  # the starting registration has not arrived: no clock to measure from
    deadline = started_at + sla
    steps = chain["steps"]
    order = CHAIN_STEPS[chain["kind"]][1:]
    overdue = [s for s in order if s not in steps or steps[s]["at"] > deadline]
    if not overdue:
        return None
    missing = [s for s in order if s not in steps]
    if missing and watermark <= deadline:
        return None  # not due yet
    culprit = (missing or overdue)[0]
    days = sla / 86_400_000
    kind = chain["kind"].lower()
    evidence = [steps[s]["event_id"] for s in CHAIN_STEPS[chain["kind"]] if s in steps]
    done_at: int | None = None
    if missing:
        detail = f"{kind} chain: step {culprit} missing {days:g} days after {iso_utc(started_at)}"
    else:
        done_at = max(steps[s]["at"] for s in overdue)
        detail = f"{kind} chain: step {culprit} done after the {days:g}-day SLA; chain complete {iso_utc(done_at)}"
    return make_flag(
        "CHAIN_STALLED",
        status="OPEN" if done_at is None else "RESOLVED",
        agency=STEP_AGENCY[culprit],
        ward=chain["ward"],
        subject=dossier_id,
        opened_at=deadline,
        resolved_at=done_at,
        detail=detail,
        evidence=evidence,
    )


def procedure_overdue(dossier_id: str, dossier: dict[str, Any], watermark: int) -> Flag | None:
    submitted = dossier.get("submitted")
    if submitted is None:
        return None
    due_at = int(submitted["due_at"])
    completed = dossier.get("completed")
    if completed is not None and completed["at"] <= due_at:
        return None
    if completed is None and watermark <= due_at:
        return None
    detail = f"procedure at {submitted.get('agency') or 'unknown agency'} due {iso_utc(due_at)}"
    evidence = [submitted["event_id"]]
    if completed is not None:
        detail += f"; completed {iso_utc(completed['at'])}"
        evidence.append(completed["event_id"])
    return make_flag(
        "PROCEDURE_OVERDUE",
        status="RESOLVED" if completed else "OPEN",
        agency="PORTAL",
        ward=submitted["ward"],
        subject=dossier_id,
        opened_at=due_at,
        resolved_at=completed["at"] if completed else None,
        detail=detail,
        evidence=evidence,
    )


class ChainStalledRule(BaseRule):
    #: every event type that can be a chain step (``chain_step`` decides which are)
    event_types = frozenset({"BirthRegistered", "ResidenceRegistered", "HealthInsuranceCardIssued",
                             "DeathRegistered", "ResidenceDeregistered", "FuneralAllowanceGranted"})

    def __init__(self, sla: dict[str, float]) -> None:
        self.sla = {kind: sla_ms(sla, f"{kind}_CHAIN") for kind in CHAIN_STEPS}
        self.deadlines = Deadlines("CHAIN_STALLED")

    def on_event(self, event: Event, change: Change) -> None:
        if chain_step(event) is None:
            return
        dossier_id = event["correlation_id"]
        chain = change.get("chains", dossier_id)
        if chain is None:
            return
        watermark = watermark_of(change)
        started_at = chain.get("started_at")
        if started_at is not None:
            self.deadlines.add(change, started_at + self.sla[chain["kind"]], dossier_id, watermark)
        self._reconcile(dossier_id, chain, watermark, change)

    def on_watermark(self, watermark: int, change: Change) -> None:
        for dossier_id, chain in self.deadlines.due_records(change, watermark, "chains"):
            self._reconcile(dossier_id, chain, watermark, change)

    def _reconcile(
        self, dossier_id: str, chain: dict[str, Any], watermark: int, change: Change
    ) -> None:
        desired = chain_stalled(dossier_id, chain, watermark, self.sla[chain["kind"]])
        reconcile(change, flag_id("CHAIN_STALLED", dossier_id), desired)


class ProcedureOverdueRule(BaseRule):
    event_types = frozenset({"ProcedureSubmitted", "ProcedureCompleted"})

    def __init__(self) -> None:
        self.deadlines = Deadlines("PROCEDURE_OVERDUE")

    def on_event(self, event: Event, change: Change) -> None:
        if event["event_type"] not in ("ProcedureSubmitted", "ProcedureCompleted"):
            return
        dossier_id = event["correlation_id"]
        dossier = change.get("dossiers", dossier_id)
        if dossier is None:
            return
        watermark = watermark_of(change)
        submitted = dossier.get("submitted")
        if submitted is not None:
            self.deadlines.add(change, int(submitted["due_at"]), dossier_id, watermark)
        reconcile(
            change,
            flag_id("PROCEDURE_OVERDUE", dossier_id),
            procedure_overdue(dossier_id, dossier, watermark),
        )

    def on_watermark(self, watermark: int, change: Change) -> None:
        for dossier_id, dossier in self.deadlines.due_records(change, watermark, "dossiers"):
            reconcile(
                change,
                flag_id("PROCEDURE_OVERDUE", dossier_id),
                procedure_overdue(dossier_id, dossier, watermark),
            )
