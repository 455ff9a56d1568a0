"""The scorecard per agency: delay histogram, percentiles, dead letters, flags, silences."""

from __future__ import annotations

import math
import random

from streams.scorecard import bucket_upper_ms, build_scorecard, delay_bucket, percentile_ms
from streams.silence import SilenceMonitor
from tests.unit.test_flags import CODEC, T0, WARD, Feed, card, sync, welfare

DAY = "2024-06-01"


def test_every_delay_falls_in_a_bucket_whose_upper_bound_is_at_most_19_percent_above_it():
    rng = random.Random(1)
    for delay in [2, 3, 1000, 1024, 86_400_000, *(rng.randrange(2, 10**10) for _ in range(2000))]:
        upper = bucket_upper_ms(delay_bucket(delay))
        assert delay <= upper < delay * 2**0.25 * (1 + 1e-12)
        assert bucket_upper_ms(delay_bucket(delay) - 1) < delay


def test_delays_up_to_a_millisecond_and_negative_ones_share_the_first_bucket():
    assert {delay_bucket(d) for d in (-5_000, 0, 1)} == {0}


def test_percentile_of_a_histogram_is_the_nearest_rank_bucket_bound():
    delays = list(range(1000, 101_000, 1000))  # 100 delays: 1 s .. 100 s
    histogram: dict[int, int] = {}
    for d in delays:
        histogram[delay_bucket(d)] = histogram.get(delay_bucket(d), 0) + 1
    for q, exact in ((0.5, 50_000), (0.95, 95_000)):
        assert exact <= percentile_ms(histogram, q) < exact * 2**0.25
    assert percentile_ms({}, 0.5) is None


def test_histograms_of_two_partitions_merge_into_the_city_percentile():
    rng = random.Random(2)
    delays = [rng.randrange(1, 3 * 86_400_000) for _ in range(500)]
    counters: list[tuple[str, int]] = []
    for part in (delays[:200], delays[200:]):  # two partitions' counters, summed by the view
        for d in part:
            counters.append((f"delay:HEALTH:{delay_bucket(d)}|{WARD}|{DAY}", 1))
    totals, by_ward = build_scorecard(counters, [])
    exact = sorted(delays)[math.ceil(0.95 * len(delays)) - 1]
    [row] = totals
    assert exact / 1000 <= row["delay_p95_s"] < exact * 2**0.25 / 1000 + 0.001
    assert by_ward[0]["ward"] == WARD and by_ward[0]["delay_p95_s"] == row["delay_p95_s"]


def test_processor_counts_events_delays_and_dead_letters_per_agency():
    feed = Feed()
    hub_time = T0 + 3_600_000
    feed.raw("lienthong.identity", CODEC.encode(card(T0)), timestamp=hub_time)
    feed.raw("lienthong.insurance", b"not avro", timestamp=hub_time)
    counters = feed.processor.state(0).counters
    totals, _ = build_scorecard(counters.items(), feed.flags.values())
    rows = {r["agency"]: r for r in totals}
    police, insurance = rows["POLICE"], rows["SOCIAL_INSURANCE"]
    assert (police["events"], police["dead_lettered"], police["dead_letter_share"]) == (1, 0, 0.0)
    assert 3600 <= police["delay_p50_s"] < 3600 * 2**0.25
    assert (insurance["events"], insurance["dead_lettered"], insurance["dead_letter_share"]) == (0, 1, 1.0)


def test_sla_flags_are_breaches_and_open_flags_count_by_agency_ward_and_month():
    feed = Feed().send(card(T0, 1), card(T0, 2), sync(T0 + 5 * 86_400_000, 2), sync(T0, 3, ok=False))
    totals, by_ward = build_scorecard([], feed.flags.values())
    [row] = [r for r in by_ward if r["agency"] == "SOCIAL_INSURANCE"]
    # citizen 1: SYNC_MISSING open; 2: resolved late; 3: SYNC_FAILED open (not an SLA)
    assert (row["ward"], row["month"], row["sla_breaches"], row["flags_open"]) == (WARD, "2024-06", 2, 2)


def test_silence_periods_count_in_the_month_they_began_with_their_length():
    monitor = SilenceMonitor(threshold_ms=60_000)
    monitor.check({"LABOUR": {"last_seen_ms": T0}}, T0 + 61_000)
    monitor.check({"LABOUR": {"last_seen_ms": T0 + 600_000}}, T0 + 601_000)
    monitor.check({"LABOUR": {"last_seen_ms": T0 + 600_000}}, T0 + 700_000)
    totals, _ = build_scorecard([], [], monitor.periods, now_ms=T0 + 760_000)
    [row] = totals
    assert (row["agency"], row["silences"], row["silent_s"]) == ("LABOUR", 2, 600.0 + 160.0)


def test_a_roll_up_is_one_open_flag_and_one_breach_per_citizen_behind_it():
    feed = Feed().send(*(card(T0 + i * 60_000, i) for i in range(5)), welfare(T0 + 5 * 86_400_000))
    counters = feed.processor.state(0).counters
    _, by_ward = build_scorecard(counters.items(), feed.flags.values())
    [row] = [r for r in by_ward if r["agency"] == "SOCIAL_INSURANCE"]
    assert (row["flags_open"], row["sla_breaches"]) == (1, 5)
