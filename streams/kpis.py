"""The KPIs of docs/product.md, computed from counters summed over partitions.

Rates are derived at read time from counts, never stored, so they stay exact
under any filter (a ward, a day, or the whole city). A rate with nothing to divide
by is ``None`` (JSON ``null``): a day with no completed procedure is not 0 % on time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from streams.state import split_counter_key

RESIDENCE_KINDS = ("PERMANENT", "TEMPORARY", "ABSENCE", "STAY_NOTICE")

PLAIN_KPIS = (
    "id_cards_issued",
    "eid_level2_activated",
    "insurance_synced",
    "insurance_sync_failed",
    "checkins_by_id_card",
    "checkins_insurance_not_found",
    "procedures_submitted",
    "procedures_completed",
    "procedures_completed_on_time",
    "birth_chain_received",
    "birth_chain_completed",
    "death_chain_received",
    "death_chain_completed",
    "welfare_payments",
    "events_total",
    "events_duplicate",
    "events_dead_lettered",
)


def _ratio(part: int, whole: int) -> float | None:
    """``part / whole``; None when nothing was counted, so "no data" never reads as 0 %."""
    return round(part / whole, 6) if whole else None


def filter_counters(
    counters: Iterable[tuple[str, int]], ward: str | None = None, day: str | None = None
) -> Counter[str]:
    """Metric totals over the counters matching the ward and day filters."""
    totals: Counter[str] = Counter()
    for key, value in counters:
        metric, k_ward, k_day = split_counter_key(key)
        if ward is not None and k_ward != ward:
            continue
        if day is not None and k_day != day:
            continue
        totals[metric] += value
    return totals


def compute_kpis(metrics: Mapping[str, int], flags_open: int) -> dict[str, Any]:
    m = Counter(metrics)
    registrations = {k: m[f"residence_registrations:{k}"] for k in RESIDENCE_KINDS}
    kpis: dict[str, Any] = {name: m[name] for name in PLAIN_KPIS}
    kpis["residence_registrations"] = registrations
    kpis["residence_online_rate"] = {
        k: _ratio(m[f"residence_online:{k}"], registrations[k]) for k in RESIDENCE_KINDS
    }
    kpis["procedures_on_time_rate"] = _ratio(m["procedures_completed_on_time"], m["procedures_completed"])
    kpis["procedures_full_online_share"] = _ratio(m["procedures_full_online"], m["procedures_submitted"])
    kpis["welfare_cashless_share"] = _ratio(m["welfare_cashless"], m["welfare_payments"])
    kpis["flags_open"] = flags_open
    return kpis
