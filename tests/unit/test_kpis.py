"""KPIs from counters: a rate with nothing to divide by is null, never 0 %."""

from __future__ import annotations

from streams.kpis import RESIDENCE_KINDS, compute_kpis


def test_every_rate_is_null_when_its_denominator_is_zero() -> None:
    kpis = compute_kpis({}, 0)
    assert kpis["procedures_on_time_rate"] is None
    assert kpis["procedures_full_online_share"] is None
    assert kpis["welfare_cashless_share"] is None
    assert kpis["residence_online_rate"] == {kind: None for kind in RESIDENCE_KINDS}


def test_a_day_with_submissions_but_nothing_completed_has_a_share_but_no_on_time_rate() -> None:
    kpis = compute_kpis({"procedures_submitted": 4, "procedures_full_online": 1}, 0)
    assert kpis["procedures_full_online_share"] == 0.25
    assert kpis["procedures_on_time_rate"] is None


def test_a_real_zero_rate_stays_zero() -> None:
    kpis = compute_kpis({"procedures_completed": 3, "procedures_completed_on_time": 0}, 0)
    assert kpis["procedures_on_time_rate"] == 0.0
