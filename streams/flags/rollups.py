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
* **Partial.** Each partition writes its group's *partial* to the ``partials``
  store (key ``ward|day``): an absolute record (ward, day, partition, the
  partition's delta sequence, count of citizens behind, how many still open,
  status OPEN/RESOLVED/WITHDRAWN, first deadline, evidence). It is not a flag:
  a ward×day's cards are spread over every partition (state is per citizen).
* **Roll-up.** :func:`merge_partials` makes **one** ``SYNC_MISSING`` flag per
  agency × ward × day from the latest partial of every partition, subject
  ``SOCIAL_INSURANCE/<ward>/<day>``: the count is the sum, OPEN while any
  partial is open, RESOLVED when every one is, ``opened_at`` the first
  deadline. The view merges the partials of all partitions for the API
  (:mod:`streams.view`); the merge stage (:mod:`streams.rollup_merge`) announces
  the merged flag on ``lienthong.alerts`` when its status changes. The citizen
  flags stay behind it (``rolled`` store of each partition,
  ``GET /api/flags/subjects?flag_id=``).
* **Released.** An insurance event for the ward dated inside the window, read
  before ``G`` passes or after, releases the group: its citizen flags become
  ordinary flags (announced), and a roll-up already announced is withdrawn. A
  group that is not missing wholesale when decided is released at once. Later
  flags of a released group are ordinary.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from schemas.topics import IDENTITY, INSURANCE
from schemas.vocabulary import WITHDRAWN
from streams.clock import iso_utc, local_day
from streams.clocks import clock_of
from streams.flags.records import EVIDENCE_CAP, FLAGS, Flag, flag_id, make_flag, reconcile
from streams.flags.tallies import end_of_day_ms
from streams.reaction import BaseReaction, Event
from streams.state import Change
from streams.stores import PENDING as TIMERS
from streams.stores import StoreName
from streams.timers import Timers

AGENCY = "SOCIAL_INSURANCE"
#: Fewest citizens a roll-up stands for: below that, the flags are shown one by one.
ROLLUP_MIN = 3
PENDING, ROLLED, RELEASED = "PENDING", "ROLLED", "RELEASED"

#: Citizen flags placed in a roll-up group, by flag id ({group, flag}).
ROLLED_FLAGS = StoreName("rolled")
#: Roll-up groups (agency × ward × day) of the partition: status and member flag ids.
ROLLUP_GROUPS = StoreName("rollups")
#: The partition's absolute partial of each group, sent to the merge stage.
ROLLUP_PARTIALS = StoreName("partials")

#: Counter metric prefix (``rollup_behind:<AGENCY>|ward|day`` of ``opened_at``): the citizen flags
#: standing behind roll-ups, each an SLA breach on the scorecard. Kept as counters so the scorecard
#: and the snapshots never hold the flags themselves (there is one per ID card in an onboarding).
BEHIND_PREFIX = "rollup_behind:"


def _count_behind(change: Change, flag: Flag, n: int) -> None:
    change.count(BEHIND_PREFIX + flag["agency"], flag["ward_code"], local_day(int(flag["opened_at"])), n)


def _set_member(change: Change, fid: str, member: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Put a citizen flag behind a roll-up (or change it there), keeping the breach counters in step."""
    if before is not None:
        _count_behind(change, before["flag"], -1)
    _count_behind(change, member["flag"], 1)
    change.set(ROLLED_FLAGS, fid, member)


def _drop_member(change: Change, fid: str, before: dict[str, Any]) -> None:
    _count_behind(change, before["flag"], -1)
    change.delete(ROLLED_FLAGS, fid)


#: A partition's share of one ward × day's roll-up (``SyncRollup.partial``).
Partial = dict[str, Any]


def group_key(card: list[Any]) -> str:
    """``ward|day`` of a citizen's (earliest) card: ``[occurred_at, event_id, ward]``."""
    return f"{card[2]}|{local_day(card[0])}"


def rollup_subject(key: str) -> str:
    """``SOCIAL_INSURANCE/<ward>/<day>``: one roll-up per agency × ward × day, whatever the partitions."""
    ward, day = key.split("|")
    return f"{AGENCY}/{ward}/{day}"


def rollup_flag_id(key: str) -> str:
    return flag_id("SYNC_MISSING", rollup_subject(key))


def parse_rollup_subject(subject: str) -> str | None:
    """The group key (``ward|day``) of a roll-up's subject, or None for any other subject.

    Strict on the day, so a tally's ``<agency>/<day>/p<n>`` subject is never read as one.
    """
    parts = subject.split("/")
    if len(parts) != 3 or parts[0] != AGENCY or not parts[1]:
        return None
    try:
        date.fromisoformat(parts[2])
    except ValueError:
        return None
    return f"{parts[1]}|{parts[2]}"


def is_partition_rollup(flag: Flag) -> bool:
    """A roll-up flag of one partition (``.../<day>/p<n>``), as changelogs written before the merge hold.

    Such flags are no longer made; the view leaves them out (the merged flag stands for them).
    """
    return flag["type"] == "SYNC_MISSING" and flag["subject"].startswith(AGENCY + "/")


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class SyncRollup(BaseReaction):
    """The roll-up groups of one partition; :class:`CitizenDataRule` places each citizen flag."""

    event_types = frozenset({"HealthInsuranceSynced", "HealthInsuranceCardIssued"})
    stores = (ROLLED_FLAGS, ROLLUP_GROUPS, ROLLUP_PARTIALS, FLAGS, TIMERS)

    def __init__(self, sla_ms: int) -> None:
        self.sla = sla_ms
        self.deadlines = Timers("SYNC_ROLLUP")

    def window_end(self, day: str) -> int:
        return end_of_day_ms(day) + self.sla

    # -- is social insurance sending for this ward? ------------------------------
    def _silent(self, change: Change, key: str, until: int) -> bool:
        """No insurance event counted for the group's ward from its day to the day of ``until``."""
        ward, day = key.split("|")
        last = local_day(min(until, self.window_end(day)))
        return not any(change.counted(f"agency:{AGENCY}", ward, d) for d in _days(day, max(day, last)))

    def _cards_issued(self, change: Change, key: str) -> int:
        ward, day = key.split("|")
        return change.counted("id_cards_issued", ward, day)

    # -- placing a citizen's flag ------------------------------------------------
    def place(self, change: Change, ref: str, card: list[Any] | None, desired: Flag | None) -> None:
        """Reconcile a citizen's ``SYNC_MISSING`` flag, behind its group's roll-up where that applies."""
        fid = flag_id("SYNC_MISSING", ref)
        member = change.get(ROLLED_FLAGS, fid)
        key = group_key(card) if card is not None else None
        if member is not None and (desired is None or member["group"] != key):
            self._leave(change, fid, member["group"])
            member = None
        if member is not None:
            _set_member(change, fid, dict(member, flag=desired), member)
            self._refresh(change, member["group"])
            return
        if desired is not None and key is not None and change.get(FLAGS, fid) is None:
            group = change.get(ROLLUP_GROUPS, key)
            if group is None or group["status"] != RELEASED:
                self._join(change, fid, key, desired)
                return
        reconcile(change, fid, desired)

    def _join(self, change: Change, fid: str, key: str, desired: Flag) -> None:
        group = change.get(ROLLUP_GROUPS, key) or {"status": PENDING, "refs": []}
        _set_member(change, fid, {"group": key, "flag": desired}, change.get(ROLLED_FLAGS, fid))
        change.set(ROLLUP_GROUPS, key, dict(group, refs=[*group["refs"], fid]))
        if group["status"] == ROLLED:
            self._refresh(change, key)
            return
        # decided once the police clock has passed the end of the day (every card read)
        # or, with an SLA shorter than a day, the first citizen deadline
        day_read = min(end_of_day_ms(key.split("|")[1]), int(desired["opened_at"])) - 1
        police = clock_of(change, IDENTITY)
        self.deadlines.notify_at(change, day_read, key, police)
        if day_read < police:
            self._decide(change, key)

    def _leave(self, change: Change, fid: str, key: str) -> None:
        member = change.get(ROLLED_FLAGS, fid)
        if member is not None:
            _drop_member(change, fid, member)
        group = change.get(ROLLUP_GROUPS, key)
        if group is not None:
            change.set(ROLLUP_GROUPS, key, dict(group, refs=[r for r in group["refs"] if r != fid]))
            self._refresh(change, key)

    # -- deciding and releasing ---------------------------------------------------
    def on_clock(self, topic: str, clock: int, change: Change) -> None:
        """Decide the pending groups whose day the police clock has passed."""
        if topic == IDENTITY:
            for key, _ in self.deadlines.due_records(change, clock, ROLLUP_GROUPS):
                self._decide(change, key)

    def _decide(self, change: Change, key: str) -> None:
        group = change.get(ROLLUP_GROUPS, key)
        if group is None or group["status"] != PENDING:
            return
        wholesale = self._cards_issued(change, key) >= ROLLUP_MIN and self._silent(
            change, key, clock_of(change, INSURANCE))
        if wholesale and group["refs"]:
            change.set(ROLLUP_GROUPS, key, dict(group, status=ROLLED))
            self._refresh(change, key)
        else:
            self._release(change, key)

    def _release(self, change: Change, key: str) -> None:
        group = change.get(ROLLUP_GROUPS, key)
        if group is None or group["status"] == RELEASED:
            return
        change.set(ROLLUP_GROUPS, key, {"status": RELEASED, "refs": []})
        self._write_partial(change, key, None)
        for fid in group["refs"]:
            member = change.get(ROLLED_FLAGS, fid)
            if member is not None:
                _drop_member(change, fid, member)
                reconcile(change, fid, member["flag"])

    def on_event(self, event: Event, change: Change) -> None:
        """Insurance data for a ward: groups whose window holds its day are not missing wholesale."""
        ward, at = event["ward_code"], event["occurred_at"]
        day = date.fromisoformat(local_day(at))
        for back in range(int(self.sla // 86_400_000) + 2):
            key = f"{ward}|{(day - timedelta(days=back)).isoformat()}"
            group = change.get(ROLLUP_GROUPS, key)
            if group is not None and group["status"] != RELEASED and at < self.window_end(key.split("|")[1]):
                self._release(change, key)

    # -- the partition's partial ----------------------------------------------------
    def _refresh(self, change: Change, key: str) -> None:
        group = change.get(ROLLUP_GROUPS, key)
        if group is None or group["status"] != ROLLED:
            return
        members = [m["flag"] for fid in group["refs"] if (m := change.get(ROLLED_FLAGS, fid)) is not None]
        self._write_partial(change, key, self.partial(key, members, change.state.partition))

    def _write_partial(self, change: Change, key: str, partial: Partial | None) -> None:
        """Store the group's partial when it changed; ``None``: withdrawn (if there was one).

        Written only on a change, so every partial the merge stage reads is news,
        or a replay of one it has (``merge_step``).
        """
        current = change.get(ROLLUP_PARTIALS, key)
        if partial is None:
            if current is None or current["status"] == WITHDRAWN:
                return
            partial = dict(current, status=WITHDRAWN, count=0, open=0, resolved_at=None, evidence=[])
        if current is not None and _content(current) == _content(partial):
            return
        change.set(ROLLUP_PARTIALS, key, dict(partial, seq=change.state.seq))

    def partial(self, key: str, members: list[Flag], partition: int) -> Partial | None:
        """This partition's share of the roll-up of group ``key`` (absolute, not an increment)."""
        if not members:
            return None
        ward, day = key.split("|")
        still_open = [m for m in members if m["status"] == "OPEN"]
        ordered = sorted(members, key=lambda m: (m["opened_at"], m["subject"]))
        return {
            "ward": ward,
            "day": day,
            "partition": partition,
            "seq": 0,  # set by _write_partial: the delta that writes it
            "count": len(members),
            "open": len(still_open),
            "status": "OPEN" if still_open else "RESOLVED",
            "opened_at": int(ordered[0]["opened_at"]),
            "resolved_at": None if still_open else max(int(m["resolved_at"]) for m in members),
            "until": local_day(self.window_end(day) - 1),
            "sla_ms": self.sla,
            "evidence": [[int(m["opened_at"]), m["evidence"][0]] for m in ordered[:EVIDENCE_CAP]],
        }



def _content(partial: Partial) -> Partial:
    return {k: v for k, v in partial.items() if k != "seq"}


def merge_partials(partials: Iterable[Partial]) -> Flag | None:
    """The one roll-up flag of a ward × day, from the latest partial of each partition.

    OPEN while any partial is open, RESOLVED once every one is; the count is the
    sum; ``opened_at`` the first deadline of all; evidence the earliest cards.
    None when no partition holds a citizen behind it (withdrawn).
    """
    live = [p for p in partials if p["status"] != WITHDRAWN and p["count"] > 0]
    if not live:
        return None
    ward, day = live[0]["ward"], live[0]["day"]
    count, still_open = sum(p["count"] for p in live), sum(p["open"] for p in live)
    hours = max(p["sla_ms"] for p in live) / 3_600_000
    detail = (
        f"{count} ID card(s) issued on {day} in ward {ward} have no insurance sync within {hours:g} h, and "
        f"social insurance sent nothing for this ward from {day} to {max(p['until'] for p in live)}; "
        f"{still_open} still missing"
    )
    resolved_at = None if still_open else max(int(p["resolved_at"]) for p in live)
    if resolved_at is not None:
        detail += f"; the last late sync at {iso_utc(resolved_at)}"
    evidence = sorted(tuple(e) for p in live for e in p["evidence"])[:EVIDENCE_CAP]
    return make_flag(
        "SYNC_MISSING",
        status="OPEN" if still_open else "RESOLVED",
        agency=AGENCY,
        ward=ward,
        subject=rollup_subject(f"{ward}|{day}"),
        opened_at=min(int(p["opened_at"]) for p in live),
        resolved_at=resolved_at,
        detail=detail,
        evidence=[str(e[1]) for e in evidence],
    )


def merge_step(entry: dict[str, Any] | None, partial: Partial) -> tuple[dict[str, Any], list[Flag]]:
    """The merge stage's state of one ward × day after one partial, and what to announce.

    ``entry``: ``{"partials": {partition: latest partial}, "announced": last flag
    announced or None}``. Partials are absolute values that replace each other
    (newest delta sequence of their partition wins), so a replayed or duplicated
    partial changes nothing; it announces the last announcement again (its send
    may have died with the worker: alerts are at-least-once, consumers dedupe by
    ``flag_id`` + ``status``). A new merged status is announced once; a change of
    count alone is not (like a tally), the API shows it.
    """
    entry = entry or {"partials": {}, "announced": None}
    source = str(partial["partition"])
    current = entry["partials"].get(source)
    announced = entry["announced"]
    if current is not None and int(current["seq"]) > int(partial["seq"]):
        return entry, []  # older than what this partition already said (a zombie's late send)
    if current == partial:
        return entry, [announced] if announced is not None else []
    before = merge_partials(entry["partials"].values())
    partials = dict(entry["partials"], **{source: partial})
    merged = merge_partials(partials.values())
    out: list[Flag] = []
    if merged is None:
        if announced is not None and announced["status"] != WITHDRAWN:
            out = [dict(before or announced, status=WITHDRAWN)]
    elif announced is None or announced["status"] != merged["status"]:
        out = [merged]
    return {"partials": partials, "announced": out[-1] if out else announced}, out


def merged_rollups(partials: Iterable[Partial]) -> list[Flag]:
    """Every roll-up flag, from the partials of all partitions (latest per partition and group)."""
    groups: dict[str, dict[int, Partial]] = {}
    for p in partials:
        kept = groups.setdefault(f"{p['ward']}|{p['day']}", {})
        current = kept.get(int(p["partition"]))
        if current is None or int(p["seq"]) >= int(current["seq"]):
            kept[int(p["partition"])] = p
    return [flag for group in groups.values() if (flag := merge_partials(group.values())) is not None]
