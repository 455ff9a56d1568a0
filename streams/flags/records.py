"""A flag record and its lifecycle: OPEN → RESOLVED, or WITHDRAWN (deleted).

Rules do not mutate flags step by step. Each rule computes the flag a subject
*should* have from the facts in its partition's stores and the watermark, and
:func:`reconcile` turns the difference into a store write plus one alert. Because
the desired flag is a function of event times only, a replay of the same history
in any cross-topic interleaving ends with the same flags.
"""

from __future__ import annotations

from typing import Any

from schemas.personal_ids import ID_SHAPE
from streams.clock import local_day
from streams.state import Change
from streams.stores import StoreName

Flag = dict[str, Any]

#: The flags of a partition, by flag id (type and subject).
FLAGS = StoreName("flags")

#: Evidence lists are capped: a flag is a pointer into the data, not a copy of it.
EVIDENCE_CAP = 20


def flag_id(flag_type: str, subject: str) -> str:
    return f"{flag_type}:{subject}"


#: Counter metric prefix of the flags a partition holds: ``flags:<STATUS>:<TYPE>:<AGENCY>|ward|day``
#: (day: local day of ``opened_at``). Kept by :func:`reconcile`, the one writer of flags, so the open
#: flags, the SLA breaches and their types are counted like events: summed over partitions, carried
#: by snapshots and restored with the counters, and never read back from the flags themselves
#: (one per citizen in an onboarding: reading them made the view grow with the history).
FLAG_COUNT_PREFIX = "flags:"


def flag_count_metric(status: str, flag_type: str, agency: str) -> str:
    return f"{FLAG_COUNT_PREFIX}{status}:{flag_type}:{agency}"


def parse_flag_count_metric(metric: str) -> tuple[str, str, str]:
    """(status, type, agency) of a :data:`FLAG_COUNT_PREFIX` metric."""
    status, flag_type, agency = metric[len(FLAG_COUNT_PREFIX):].split(":", 2)
    return status, flag_type, agency


def _count_flag(change: Change, flag: Flag, n: int) -> None:
    metric = flag_count_metric(flag["status"], flag["type"], flag["agency"] or "")
    change.count(metric, flag["ward_code"] or "", local_day(int(flag["opened_at"])), n)


def scrub(text: str) -> str:
    """Mask anything shaped like a 12-digit personal ID number (e.g. in a free-text reason)."""
    return ID_SHAPE.sub("•" * 12, text)[:500]


def make_flag(
    flag_type: str,
    *,
    status: str,
    agency: str,
    ward: str,
    subject: str,
    opened_at: int,
    resolved_at: int | None = None,
    detail: str = "",
    evidence: list[str] | None = None,
) -> Flag:
    """A flag dict with exactly the fields of the ``Flag`` Avro contract."""
    return {
        "flag_id": flag_id(flag_type, subject),
        "type": flag_type,
        "status": status,
        "agency": agency,
        "ward_code": ward,
        "subject": subject,
        "opened_at": int(opened_at),
        "resolved_at": None if resolved_at is None else int(resolved_at),
        "detail": scrub(detail),
        "evidence": list(dict.fromkeys(evidence or []))[:EVIDENCE_CAP],
    }


def reconcile(
    change: Change, fid: str, desired: Flag | None, *, announce_updates: bool = True
) -> None:
    """Make the stored flag ``fid`` equal ``desired``; announce what changed on the alerts topic.

    * nothing stored, something desired: the flag opens (possibly already RESOLVED,
      when the late data was consumed before the deadline was noticed);
    * stored and desired differ: it resolves, re-opens or its details change;
    * stored, nothing desired: the data turned out to be within its SLA, so the flag
      is deleted and announced once more as WITHDRAWN.

    ``announce_updates=False`` publishes only status changes, so tallies that bump a
    count on every event do not flood the alerts topic.
    """
    current = change.get(FLAGS, fid)
    if desired is None:
        if current is not None:
            change.delete(FLAGS, fid)
            _count_flag(change, current, -1)
            change.flag_changes.append(dict(current, status="WITHDRAWN"))
        return
    if current == desired:
        return
    change.set(FLAGS, fid, desired)
    if current is not None:
        _count_flag(change, current, -1)
    _count_flag(change, desired, 1)
    if announce_updates or current is None or current["status"] != desired["status"]:
        change.flag_changes.append(desired)


def open_flag(
    change: Change,
    flag_type: str,
    *,
    agency: str,
    ward: str,
    subject: str,
    opened_at: int,
    detail: str = "",
    evidence: list[str] | None = None,
) -> Flag | None:
    """Open a flag unless one of that type is already known for the subject."""
    fid = flag_id(flag_type, subject)
    if change.get(FLAGS, fid) is not None:
        return None
    flag = make_flag(
        flag_type,
        status="OPEN",
        agency=agency,
        ward=ward,
        subject=subject,
        opened_at=opened_at,
        detail=detail,
        evidence=evidence,
    )
    reconcile(change, fid, flag)
    return flag


def resolve_flag(
    change: Change,
    flag_type: str,
    subject: str,
    resolved_at: int,
    evidence: list[str] | None = None,
) -> Flag | None:
    """Resolve an open flag: the missing data arrived (late)."""
    fid = flag_id(flag_type, subject)
    flag = change.get(FLAGS, fid)
    if flag is None or flag["status"] != "OPEN":
        return None
    flag = dict(
        flag,
        status="RESOLVED",
        resolved_at=int(resolved_at),
        evidence=list(dict.fromkeys(flag["evidence"] + list(evidence or [])))[: EVIDENCE_CAP + 1],
    )
    reconcile(change, fid, flag)
    return flag
