"""Service levels the flag rules measure against: defaults, and operator overrides.

Every SLA is in hours so one unit fits all, and each can be overridden with
``LIENTHONG_SLA_<NAME>`` (read by :mod:`hubbase.settings`). The defaults are the
city's practice rounded up to whole days with room for hand-offs between
agencies; ``docs/flags.md`` says where each comes from.
"""

from __future__ import annotations

from collections.abc import Mapping

HOUR_MS = 3_600_000

#: name → hours. Event-time SLAs except ``AGENCY_SILENT`` and ``SOURCE_IDLE`` (wall clock).
DEFAULT_SLA_HOURS: dict[str, float] = {
    # ID card issued → its health-insurance record synced with the card.
    "INSURANCE_SYNC": 72.0,
    # Birth registered → permanent residence and child insurance card done.
    "BIRTH_CHAIN": 15 * 24.0,
    # Death registered → residence deleted and funeral allowance granted.
    "DEATH_CHAIN": 30 * 24.0,
    # How far behind its own topic's progress an event may arrive before it is "late".
    "LATE_EVENT": 24.0,
    # No event or heartbeat from an agency for this long (wall clock).
    "AGENCY_SILENT": 0.25,
    # A caught-up feed quiet this long (wall clock) is idle: flags waiting for it
    # are judged on the other feeds' clocks (streams/clocks.py). 30 seconds.
    "SOURCE_IDLE": 30 / 3600,
}


def resolve_sla(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Defaults with overrides applied; an unknown or non-positive SLA is a typo, so refuse it."""
    sla = dict(DEFAULT_SLA_HOURS)
    for name, hours in (overrides or {}).items():
        key = name.upper()
        if key not in DEFAULT_SLA_HOURS:
            raise ValueError(f"unknown SLA {name!r}; known: {', '.join(sorted(DEFAULT_SLA_HOURS))}")
        if not float(hours) > 0:
            raise ValueError(f"SLA {name} must be a positive number of hours, not {hours!r}")
        sla[key] = float(hours)
    return sla


def sla_ms(sla: Mapping[str, float], name: str) -> int:
    return round(sla[name] * HOUR_MS)
