"""Flags about one citizen's data across police, social insurance and hospitals.

* ``SYNC_FAILED`` — social insurance reported that syncing the citizen's health
  insurance with the ID card failed; resolved by a later successful sync.
* ``SYNC_MISSING`` — an ID card was issued and no sync (any outcome) came within
  the ``INSURANCE_SYNC`` SLA; resolved when the sync arrives late.
* ``INSURANCE_NOT_SHARED`` — a hospital check-in found no insurance although the
  citizen's ID card existed and their latest sync before the visit had succeeded:
  the data existed but did not reach the hospital. Resolved by a later check-in
  that found it.

All three read one compact record per citizen in the ``citizens`` store (the
facts, never the flags), so each flag is a pure function of the record's event
times and social insurance's clock (``streams.clocks``); see
:func:`streams.flags.records.reconcile`.
"""

from __future__ import annotations

from typing import Any

from schemas.topics import INSURANCE
from streams.clock import iso_utc
from streams.clocks import clock_of
from streams.flags.records import EVIDENCE_CAP, FLAGS, Flag, flag_id, make_flag, reconcile
from streams.flags.rollups import SyncRollup
from streams.reaction import BaseReaction, Event
from streams.sla import sla_ms
from streams.state import Change
from streams.stores import PENDING, StoreName
from streams.timers import Timers

#: Each citizen's ID card, syncs and check-ins: the facts its three flags are reconciled from.
CITIZENS = StoreName("citizens")

#: Most recent facts kept per citizen and kind (by event time, so the kept set
#: does not depend on arrival order).
FACTS_CAP = 16

Record = dict[str, Any]
# fact rows: [occurred_at, code, event_id, ward, extra]
#   syncs:    code "S" (SYNCED) / "F" (FAILED), extra = failure reason
#   checkins: code "F" (FOUND) / "N" (NOT_FOUND), extra = facility code


def _insert(rows: list[list[Any]], row: list[Any]) -> list[list[Any]]:
    """Rows sorted by (time, event id), newest ``FACTS_CAP`` kept, no duplicate ids."""
    event_id = row[2]
    for r in rows:
        if r[2] == event_id:
            return rows
    if not rows or (row[0], event_id) > (rows[-1][0], rows[-1][2]):
        merged = rows + [row]  # the common case: facts arrive in time order
    else:
        merged = sorted(rows + [row], key=_key)
    return merged[-FACTS_CAP:]


def _key(row: list[Any]) -> tuple[int, str]:
    return row[0], row[2]


def remember(record: Record, event: Event) -> Record:
    """The citizen record with this event's fact added (unchanged if it adds nothing)."""
    kind = event["event_type"]
    if kind == "IdCardIssued":
        card = record.get("card")
        if card is None or (event["occurred_at"], event["event_id"]) < (card[0], card[1]):
            return dict(record, card=[event["occurred_at"], event["event_id"], event["ward_code"]])
        return record
    if kind == "HealthInsuranceSynced":
        failed = event["outcome"] == "FAILED"
        row = [
            event["occurred_at"],
            "F" if failed else "S",
            event["event_id"],
            event["ward_code"],
            (event.get("failure_reason") or "") if failed else "",
        ]
        return dict(record, syncs=_insert(record.get("syncs", []), row))
    if kind == "MedicalCheckIn" and event["insurance_lookup"] in ("FOUND", "NOT_FOUND"):
        row = [
            event["occurred_at"],
            "F" if event["insurance_lookup"] == "FOUND" else "N",
            event["event_id"],
            event["ward_code"],
            event["facility_code"],
        ]
        return dict(record, checkins=_insert(record.get("checkins", []), row))
    return record


# -- the desired flags, as pure functions of the record -----------------------
def sync_failed(ref: str, record: Record) -> Flag | None:
    """The latest failure episode: failures since the last success, and the success that ended it."""
    syncs = record.get("syncs", [])
    for s in syncs:
        if s[1] == "F":
            break
    else:
        return None  # the common case: no failed sync (a loop, cheaper here than any())
    failures = [s for s in syncs if s[1] == "F"]
    last = failures[-1]
    before = [s for s in syncs if s[1] == "S" and _key(s) < _key(last)]
    episode = [f for f in failures if not before or _key(f) > _key(before[-1])]
    fix = next((s for s in syncs if s[1] == "S" and _key(s) > _key(last)), None)
    reason = last[4] or "no reason given"
    detail = f"{len(episode)} failed insurance sync(s); last reason: {reason}"
    evidence = [f[2] for f in episode][: EVIDENCE_CAP - 1]
    if fix is not None:
        detail += f"; synced at {iso_utc(fix[0])}"
        evidence.append(fix[2])
    return make_flag(
        "SYNC_FAILED",
        status="RESOLVED" if fix else "OPEN",
        agency="SOCIAL_INSURANCE",
        ward=last[3],
        subject=ref,
        opened_at=episode[0][0],
        resolved_at=fix[0] if fix else None,
        detail=detail,
        evidence=evidence,
    )


def sync_missing(ref: str, record: Record, watermark: int, sla: int) -> Flag | None:
    card = record.get("card")
    if card is None:
        return None
    deadline = card[0] + sla
    syncs = record.get("syncs", [])
    if syncs and syncs[0][0] <= deadline:  # rows are sorted by time: the first is the earliest
        return None
    if not syncs and watermark <= deadline:
        return None  # not due yet
    first = syncs[0] if syncs else None
    hours = sla / 3_600_000
    detail = f"ID card issued {iso_utc(card[0])}; no insurance sync within {hours:g} h"
    if first is not None:
        detail += f"; first sync at {iso_utc(first[0])}"
    return make_flag(
        "SYNC_MISSING",
        status="RESOLVED" if first else "OPEN",
        agency="SOCIAL_INSURANCE",
        ward=card[2],
        subject=ref,
        opened_at=deadline,
        resolved_at=first[0] if first else None,
        detail=detail,
        evidence=[card[1]] + ([first[2]] if first else []),
    )


def insurance_not_shared(ref: str, record: Record, clock: int) -> Flag | None:
    """``clock``: social insurance's clock; a visit after it is not judged yet (a sync
    before the visit may still be read from social insurance's feed)."""
    card = record.get("card")
    syncs = record.get("syncs", [])
    checkins = record.get("checkins", [])
    if card is None or not syncs or not checkins:
        return None
    for c in checkins:
        if c[1] == "N":
            break
    else:
        return None  # the common case: every check-in found the insurance

    def shared_before(at: int) -> list[Any] | None:
        """The latest sync at or before ``at``, if it succeeded."""
        prior = [s for s in syncs if s[0] <= at]
        return prior[-1] if prior and prior[-1][1] == "S" else None

    missed = [c for c in checkins if c[1] == "N" and card[0] <= c[0] <= clock and shared_before(c[0])]
    if not missed:
        return None
    first, last = missed[0], missed[-1]
    sync = shared_before(first[0])
    assert sync is not None
    fix = next((c for c in checkins if c[1] == "F" and _key(c) > _key(last)), None)
    detail = (
        f"{len(missed)} hospital check-in(s) found no insurance although the ID card and a "
        f"synced insurance record existed; first at facility {first[4]}"
    )
    evidence = [card[1], sync[2]] + [c[2] for c in missed][: EVIDENCE_CAP - 3]
    if fix is not None:
        detail += f"; found at facility {fix[4]} on {iso_utc(fix[0])}"
        evidence.append(fix[2])
    return make_flag(
        "INSURANCE_NOT_SHARED",
        status="RESOLVED" if fix else "OPEN",
        agency="SOCIAL_INSURANCE",
        ward=first[3],
        subject=ref,
        opened_at=first[0],
        resolved_at=fix[0] if fix else None,
        detail=detail,
        evidence=evidence,
    )


class CitizenDataRule(BaseReaction):
    """Keeps each citizen's card/sync/check-in facts and reconciles their three flags."""

    event_types = frozenset({"IdCardIssued", "HealthInsuranceSynced", "MedicalCheckIn"})
    stores = (CITIZENS, FLAGS, PENDING)
    flag_types = ("SYNC_FAILED", "SYNC_MISSING", "INSURANCE_NOT_SHARED")

    def __init__(self, sla: dict[str, float], rollup: SyncRollup | None = None) -> None:
        self.sync_sla = sla_ms(sla, "INSURANCE_SYNC")
        self.deadlines = Timers("SYNC_MISSING")
        #: check-ins waiting for social insurance's clock to reach them
        self.visits = Timers("INSURANCE_NOT_SHARED")
        #: puts SYNC_MISSING behind one flag per ward and day where the flow is missing wholesale
        self.rollup = rollup or SyncRollup(self.sync_sla)

    def on_event(self, event: Event, change: Change) -> None:
        if event["event_type"] not in self.event_types:
            return
        ref = event["citizen_ref"]
        record = change.get(CITIZENS, ref, {})
        updated = remember(record, event)
        if updated is record:
            return
        change.set(CITIZENS, ref, updated)
        watermark = clock_of(change, INSURANCE)  # SYNC_MISSING waits for social insurance's feed
        card = updated.get("card")
        if card is not None:
            self.deadlines.notify_at(change, card[0] + self.sync_sla, ref, watermark)
        if event["event_type"] == "MedicalCheckIn" and event["insurance_lookup"] == "NOT_FOUND":
            self.visits.notify_at(change, event["occurred_at"] - 1, ref, watermark)
        kind = event["event_type"]
        self.reconcile_all(ref, updated, watermark, change,
                           syncs_changed=kind == "HealthInsuranceSynced", checkin_only=kind == "MedicalCheckIn")

    def on_clock(self, topic: str, watermark: int, change: Change) -> None:
        if topic != INSURANCE:
            return
        for ref, record in self.deadlines.due_records(change, watermark, CITIZENS):
            self.rollup.place(change, ref, record.get("card"), sync_missing(ref, record, watermark, self.sync_sla))
        for ref, record in self.visits.due_records(change, watermark, CITIZENS):
            reconcile(change, flag_id("INSURANCE_NOT_SHARED", ref), insurance_not_shared(ref, record, watermark))

    def reconcile_all(
        self,
        ref: str,
        record: Record,
        watermark: int,
        change: Change,
        *,
        syncs_changed: bool = True,
        checkin_only: bool = False,
    ) -> None:
        """Bring the citizen's three flags in line with the record.

        Every change of the record is reconciled here, so a flag whose inputs an
        event did not touch already equals the desired one and is not built again
        (the per-event hot path): ``SYNC_FAILED`` reads the syncs only; and
        ``SYNC_MISSING`` reads the card, the syncs and social insurance's clock
        (``watermark`` here), whose moves past a deadline :meth:`on_clock` reconciles, so a check-in
        (``checkin_only``) cannot change it.
        """
        if syncs_changed:
            reconcile(change, flag_id("SYNC_FAILED", ref), sync_failed(ref, record))
        if not checkin_only:
            self.rollup.place(change, ref, record.get("card"), sync_missing(ref, record, watermark, self.sync_sla))
        reconcile(change, flag_id("INSURANCE_NOT_SHARED", ref), insurance_not_shared(ref, record, watermark))
