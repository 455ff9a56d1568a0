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

from schemas.topics import INSURANCE, PROCEDURES, RESIDENCE, WELFARE
from streams.clock import iso_utc
from streams.clocks import clock_of
from streams.counting import CHAIN_STEPS, CHAINS, DOSSIERS, chain_step
from streams.flags.records import FLAGS, Flag, flag_id, make_flag, reconcile
from streams.reaction import BaseReaction, Event
from streams.sla import sla_ms
from streams.state import Change
from streams.stores import PENDING
from streams.timers import Timers

#: Agency that owes each step after the first.
STEP_AGENCY: dict[str, str] = {
    "permanent_residence": "POLICE",
    "child_insurance_card": "SOCIAL_INSURANCE",
    "residence_deregistered": "POLICE",
    "funeral_allowance": "LABOUR",
}

#: The feed that carries each step after the first: a missing step is judged on its clock.
STEP_TOPIC: dict[str, str] = {
    "permanent_residence": RESIDENCE,
    "child_insurance_card": INSURANCE,
    "residence_deregistered": RESIDENCE,
    "funeral_allowance": WELFARE,
}


def awaited_step(chain: dict[str, Any]) -> str | None:
    """The first step after the start that has not arrived: the one the chain waits for."""
    steps = chain["steps"]
    return next((s for s in CHAIN_STEPS[chain["kind"]][1:] if s not in steps), None)


def chain_stalled(dossier_id: str, chain: dict[str, Any], watermark: int, sla: int) -> Flag | None:
    """A chain's flag from its steps' event times: the first step missing or done after the deadline.

    ``watermark`` is the clock of the feed that carries the first missing step
    (:func:`awaited_step`): only that feed can tell that the step is really missing.
    """
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


class ChainStalledRule(BaseReaction):
    #: every event type that can be a chain step (``chain_step`` decides which are)
    event_types = frozenset({"BirthRegistered", "ResidenceRegistered", "HealthInsuranceCardIssued",
                             "DeathRegistered", "ResidenceDeregistered", "FuneralAllowanceGranted"})

    stores = (CHAINS, FLAGS, PENDING)
    flag_types = ("CHAIN_STALLED",)

    def __init__(self, sla: dict[str, float]) -> None:
        self.sla = {kind: sla_ms(sla, f"{kind}_CHAIN") for kind in CHAIN_STEPS}
        #: deadlines by the feed of the step they wait for
        self.deadlines = {topic: Timers(f"CHAIN_STALLED@{topic}") for topic in set(STEP_TOPIC.values())}
        #: deadlines written before clocks were per feed (on the partition watermark)
        self.legacy = Timers("CHAIN_STALLED")

    def on_event(self, event: Event, change: Change) -> None:
        if chain_step(event) is None:
            return
        dossier_id = event["correlation_id"]
        chain = change.get(CHAINS, dossier_id)
        if chain is None:
            return
        self._schedule_and_reconcile(dossier_id, chain, change)

    def on_clock(self, topic: str, clock: int, change: Change) -> None:
        deadlines = self.deadlines.get(topic)
        if deadlines is not None:
            for dossier_id, chain in deadlines.due_records(change, clock, CHAINS):
                self._reconcile(dossier_id, chain, change)

    def on_watermark(self, watermark: int, change: Change) -> None:
        for dossier_id, chain in self.legacy.due_records(change, watermark, CHAINS):
            self._schedule_and_reconcile(dossier_id, chain, change)

    def _schedule_and_reconcile(self, dossier_id: str, chain: dict[str, Any], change: Change) -> None:
        """Wait on the feed of the step the chain awaits now, and bring its flag in line."""
        started_at = chain.get("started_at")
        step = awaited_step(chain)
        if started_at is not None and step is not None:
            topic = STEP_TOPIC[step]
            deadline = started_at + self.sla[chain["kind"]]
            self.deadlines[topic].notify_at(change, deadline, dossier_id, clock_of(change, topic))
        self._reconcile(dossier_id, chain, change)

    def _reconcile(self, dossier_id: str, chain: dict[str, Any], change: Change) -> None:
        step = awaited_step(chain)
        clock = clock_of(change, STEP_TOPIC[step]) if step is not None else 0
        desired = chain_stalled(dossier_id, chain, clock, self.sla[chain["kind"]])
        reconcile(change, flag_id("CHAIN_STALLED", dossier_id), desired)


class ProcedureOverdueRule(BaseReaction):
    event_types = frozenset({"ProcedureSubmitted", "ProcedureCompleted"})
    stores = (DOSSIERS, FLAGS, PENDING)
    flag_types = ("PROCEDURE_OVERDUE",)

    def __init__(self) -> None:
        self.deadlines = Timers("PROCEDURE_OVERDUE")

    def on_event(self, event: Event, change: Change) -> None:
        if event["event_type"] not in ("ProcedureSubmitted", "ProcedureCompleted"):
            return
        dossier_id = event["correlation_id"]
        dossier = change.get(DOSSIERS, dossier_id)
        if dossier is None:
            return
        watermark = clock_of(change, PROCEDURES)  # the portal's own feed says if it completed
        submitted = dossier.get("submitted")
        if submitted is not None:
            self.deadlines.notify_at(change, int(submitted["due_at"]), dossier_id, watermark)
        reconcile(
            change,
            flag_id("PROCEDURE_OVERDUE", dossier_id),
            procedure_overdue(dossier_id, dossier, watermark),
        )

    def on_clock(self, topic: str, watermark: int, change: Change) -> None:
        if topic != PROCEDURES:
            return
        for dossier_id, dossier in self.deadlines.due_records(change, watermark, DOSSIERS):
            reconcile(
                change,
                flag_id("PROCEDURE_OVERDUE", dossier_id),
                procedure_overdue(dossier_id, dossier, watermark),
            )
