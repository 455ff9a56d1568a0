"""``SYNC_MISSING`` rolled up where social insurance's flow is missing wholesale.

When the police onboard first, every ID card without an insurance sync would be
its own ``SYNC_MISSING`` flag: tens of thousands of flags where the truth is one
thing, "social insurance is not sending yet". So the citizen flags of one
**group** — the ID cards issued in one ward on one local day ``d``, in one
partition (state is per partition) — are put behind **one** flag when the flow
is missing wholesale:

* **Definition.** The group's window runs from the start of ``d`` to ``G`` = end
  of ``d`` + ``INSURANCE_SYNC`` (the deadline of the day's last card). The flow
  is *missing wholesale* when, as the first citizen flag of the group falls due
  (social insurance's clock past that card's deadline, ``streams.clocks``), the
  partition holds no event at all from ``SOCIAL_INSURANCE`` for that ward on any
  local day from ``d`` to the day of that clock, and at least
  :data:`ROLLUP_MIN` ID cards were issued in the ward on ``d``. The police clock
  must have passed the end of ``d`` (every card of the day read; with an
  ``INSURANCE_SYNC`` shorter than a day, the first citizen deadline) before the
  group is decided; until then (only in a backfill that reads the police behind
  social insurance) the citizen flags of the group are held, not announced.
* **Roll-up.** A ``SYNC_MISSING`` flag with subject
  ``SOCIAL_INSURANCE/<ward>/<day>/p<partition>``, ``detail`` giving the count,
  OPEN while any citizen's sync is still missing, RESOLVED when every late sync
  has arrived; ``opened_at`` is the first citizen deadline. Only its opening and
  resolving are announced. The citizen flags stay behind it (``rolled`` store,
  ``GET /api/flags/subjects?flag_id=``).
* **Released.** An insurance event for the ward dated inside the window, read
  before ``G`` passes or after, releases the group: its citizen flags become
  ordinary flags (announced), and a roll-up already announced is withdrawn. A
  group that is not missing wholesale when decided is released at once. Later
  flags of a released group are ordinary.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from schemas.topics import IDENTITY, INSURANCE
from streams.clock import iso_utc, local_day
from streams.clocks import clock_of
from streams.flags.deadlines import Deadlines
from streams.flags.records import EVIDENCE_CAP, Flag, flag_id, make_flag, reconcile
from streams.flags.rules import BaseRule, Event
from streams.flags.tallies import end_of_day_ms
from streams.state import Change

AGENCY = "SOCIAL_INSURANCE"
#: Fewest citizens a roll-up stands for: below that, the flags are shown one by one.
ROLLUP_MIN = 3
PENDING, ROLLED, RELEASED = "PENDING", "ROLLED", "RELEASED"


def group_key(card: list[Any]) -> str:
    """``ward|day`` of a citizen's (earliest) card: ``[occurred_at, event_id, ward]``."""
    return f"{card[2]}|{local_day(card[0])}"


def rollup_flag_id(key: str, partition: int) -> str:
    ward, day = key.split("|")
    return flag_id("SYNC_MISSING", f"{AGENCY}/{ward}/{day}/p{partition}")


def parse_rollup_subject(subject: str) -> tuple[str, int] | None:
    """(group key, partition) of a roll-up's subject, or None for any other subject."""
    parts = subject.split("/")
    if len(parts) != 4 or parts[0] != AGENCY or not parts[3].startswith("p") or not parts[3][1:].isdigit():
        return None
    return f"{parts[1]}|{parts[2]}", int(parts[3][1:])


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class SyncRollup(BaseRule):
    """The roll-up groups of one partition; :class:`CitizenDataRule` places each citizen flag."""

    event_types = frozenset({"HealthInsuranceSynced", "HealthInsuranceCardIssued"})

    def __init__(self, sla_ms: int) -> None:
        self.sla = sla_ms
        self.deadlines = Deadlines("SYNC_ROLLUP")

    def window_end(self, day: str) -> int:
        return end_of_day_ms(day) + self.sla

    # -- is social insurance sending for this ward? ------------------------------
    def _silent(self, change: Change, key: str, until: int) -> bool:
        """No insurance event counted for the group's ward from its day to the day of ``until``."""
        ward, day = key.split("|")
        last = local_day(min(until, self.window_end(day)))
        counters, pending = change.state.counters, change.inc
        for d in _days(day, max(day, last)):
            counter = f"agency:{AGENCY}|{ward}|{d}"
            if counters.get(counter, 0) or pending.get(counter, 0):
                return False
        return True

    def _cards_issued(self, change: Change, key: str) -> int:
        ward, day = key.split("|")
        counter = f"id_cards_issued|{ward}|{day}"
        return int(change.state.counters.get(counter, 0) + change.inc.get(counter, 0))

    # -- placing a citizen's flag ------------------------------------------------
    def place(self, change: Change, ref: str, card: list[Any] | None, desired: Flag | None) -> None:
        """Reconcile a citizen's ``SYNC_MISSING`` flag, behind its group's roll-up where that applies."""
        fid = flag_id("SYNC_MISSING", ref)
        member = change.get("rolled", fid)
        key = group_key(card) if card is not None else None
        if member is not None and (desired is None or member["group"] != key):
            self._leave(change, fid, member["group"])
            member = None
        if member is not None:
            change.set("rolled", fid, dict(member, flag=desired))
            self._refresh(change, member["group"])
            return
        if desired is not None and key is not None and change.get("flags", fid) is None:
            group = change.get("rollups", key)
            if group is None or group["status"] != RELEASED:
                self._join(change, fid, key, desired)
                return
        reconcile(change, fid, desired)

    def _join(self, change: Change, fid: str, key: str, desired: Flag) -> None:
        group = change.get("rollups", key) or {"status": PENDING, "refs": []}
        change.set("rolled", fid, {"group": key, "flag": desired})
        change.set("rollups", key, dict(group, refs=[*group["refs"], fid]))
        if group["status"] == ROLLED:
            self._refresh(change, key)
            return
        # decided once the police clock has passed the end of the day (every card read)
        # or, with an SLA shorter than a day, the first citizen deadline
        day_read = min(end_of_day_ms(key.split("|")[1]), int(desired["opened_at"])) - 1
        police = clock_of(change, IDENTITY)
        self.deadlines.add(change, day_read, key, police)
        if day_read < police:
            self._decide(change, key)

    def _leave(self, change: Change, fid: str, key: str) -> None:
        change.delete("rolled", fid)
        group = change.get("rollups", key)
        if group is not None:
            change.set("rollups", key, dict(group, refs=[r for r in group["refs"] if r != fid]))
            self._refresh(change, key)

    # -- deciding and releasing ---------------------------------------------------
    def on_clock(self, topic: str, clock: int, change: Change) -> None:
        """Decide the pending groups whose day the police clock has passed."""
        if topic == IDENTITY:
            for key, _ in self.deadlines.due_records(change, clock, "rollups"):
                self._decide(change, key)

    def _decide(self, change: Change, key: str) -> None:
        group = change.get("rollups", key)
        if group is None or group["status"] != PENDING:
            return
        wholesale = self._cards_issued(change, key) >= ROLLUP_MIN and self._silent(
            change, key, clock_of(change, INSURANCE))
        if wholesale and group["refs"]:
            change.set("rollups", key, dict(group, status=ROLLED))
            self._refresh(change, key)
        else:
            self._release(change, key)

    def _release(self, change: Change, key: str) -> None:
        group = change.get("rollups", key)
        if group is None or group["status"] == RELEASED:
            return
        change.set("rollups", key, {"status": RELEASED, "refs": []})
        reconcile(change, rollup_flag_id(key, change.state.partition), None)
        for fid in group["refs"]:
            member = change.get("rolled", fid)
            if member is not None:
                change.delete("rolled", fid)
                reconcile(change, fid, member["flag"])

    def on_event(self, event: Event, change: Change) -> None:
        """Insurance data for a ward: groups whose window holds its day are not missing wholesale."""
        ward, at = event["ward_code"], event["occurred_at"]
        day = date.fromisoformat(local_day(at))
        for back in range(int(self.sla // 86_400_000) + 2):
            key = f"{ward}|{(day - timedelta(days=back)).isoformat()}"
            group = change.get("rollups", key)
            if group is not None and group["status"] != RELEASED and at < self.window_end(key.split("|")[1]):
                self._release(change, key)

    # -- the roll-up flag -----------------------------------------------------------
    def _refresh(self, change: Change, key: str) -> None:
        group = change.get("rollups", key)
        if group is None or group["status"] != ROLLED:
            return
        members = [m["flag"] for fid in group["refs"] if (m := change.get("rolled", fid)) is not None]
        reconcile(change, rollup_flag_id(key, change.state.partition), self.rollup_flag(key, members, change),
                  announce_updates=False)

    def rollup_flag(self, key: str, members: list[Flag], change: Change) -> Flag | None:
        if not members:
            return None
        ward, day = key.split("|")
        still_open = [m for m in members if m["status"] == "OPEN"]
        last_day = local_day(self.window_end(day) - 1)
        detail = (
            f"{len(members)} ID card(s) issued on {day} in ward {ward} have no insurance sync within "
            f"{self.sla / 3_600_000:g} h, and social insurance sent nothing for this ward from {day} to "
            f"{last_day} (partition {change.state.partition}); {len(still_open)} still missing"
        )
        resolved_at = None if still_open else max(int(m["resolved_at"]) for m in members)
        if resolved_at is not None:
            detail += f"; the last late sync at {iso_utc(resolved_at)}"
        ordered = sorted(members, key=lambda m: (m["opened_at"], m["subject"]))
        return make_flag(
            "SYNC_MISSING",
            status="OPEN" if still_open else "RESOLVED",
            agency=AGENCY,
            ward=ward,
            subject=f"{AGENCY}/{ward}/{day}/p{change.state.partition}",
            opened_at=ordered[0]["opened_at"],
            resolved_at=resolved_at,
            detail=detail,
            evidence=[m["evidence"][0] for m in ordered[:EVIDENCE_CAP]],
        )


def rolled_subjects(rolled: dict[str, Any] | list[Any], key: str) -> list[Flag]:
    """The citizen flags behind the roll-up of group ``key``, from a ``rolled`` store (or its values)."""
    values = rolled.values() if isinstance(rolled, dict) else rolled
    return sorted((m["flag"] for m in values if m["group"] == key), key=lambda f: (f["opened_at"], f["subject"]))
