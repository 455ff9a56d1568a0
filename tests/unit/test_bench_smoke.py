"""The benchmark harness counts what it should (no timing assertions: figures live in bench/)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.profile_processor import run_bare_decode, run_processor, totals
from bench.workload import build_events, encode_messages


def test_workload_is_mixed_city_traffic_grouped_per_partition():
    events = build_events(400, seed=3)
    assert len(events) == 400
    assert len({e["event_type"] for e in events}) >= 5
    messages = encode_messages(events, batch_size=50, partitions=4)
    assert sum(m.events for m in messages) == 400
    assert all(0 <= m.partition < 4 for m in messages)


def test_processor_pass_counts_every_event_exactly_once():
    events = build_events(300, seed=4)
    messages = encode_messages(events, batch_size=40, partitions=4)
    _, decoded = run_bare_decode(messages)
    assert decoded == 300
    _, processor = run_processor(messages)
    counted = totals(processor)
    unique = len({e["event_id"] for e in events})
    assert counted["events_total"] == unique
    assert counted["events_duplicate"] == 300 - unique
    assert counted["events_dead_lettered"] == 0


def test_single_event_messages_count_the_same_as_batches():
    events = build_events(200, seed=5)
    one = totals(run_processor(encode_messages(events, batch_size=1, partitions=2))[1])
    many = totals(run_processor(encode_messages(events, batch_size=100, partitions=2))[1])
    assert one == many
    assert one["events_total"] + one["events_duplicate"] == 200
    assert Counter(e["event_type"] for e in events)  # sanity: events carry their type


def test_lienthong_bench_end_to_end_reports_the_right_counts():
    """The real harness (embedded broker, Publisher, bare consumer, one worker) on a small backlog."""
    from bench.throughput import main

    figures = main(events=1500, batch_size=100, workers=1, quiet=True, flag_churn=True)
    assert figures.events == 1500
    assert figures.bare_events == 1500
    run = figures.runs[1]
    assert run.counted == 1500
    assert run.alerts and run.spurious == 0  # the worker's flag changes, none a live run would not make
    assert run.messages == figures.messages
    assert run.peak_rss_mib[0] > 0


def test_the_signing_bench_verifies_every_message_it_times():
    from bench.signing import measure

    figures = measure(build_events(400, seed=6), batch_size=100, singles=50)
    # Figures only: which of the two is faster is for the bench to print, not for a test
    # on a shared machine to assert (it once failed CI when a load spike hit the singles).
    assert figures.single_verify_us > 0 and figures.batch_verify_us > 0
    assert figures.core_on_us > 0 and figures.core_off_us > 0
    assert 1 <= figures.batch_events <= 100
def test_a_backfill_of_the_bench_workload_raises_no_flag_a_live_run_would_not():
    """bench.flag_churn on a small backlog: reading police first and insurance last, or at random."""
    from bench.flag_churn import live_run, measure

    events = build_events(6000, seed=6)
    live = live_run(events, partitions=4)
    assert live.changes, "the workload raises flags"
    for order in ("topics", "random"):
        churn = measure(events, order, batch_size=200, partitions=4, live=live)
        assert churn.spurious == []
        assert churn.same_final_flags


def test_latency_is_from_each_publish_to_the_first_counters_that_show_it():
    from bench.peer import latencies_of

    sent = [10.0, 10.5, 11.0, 11.5]
    seen = [(10.2, 0), (11.2, 2), (12.0, 3)]  # the 4th never shown
    latencies, unseen = latencies_of(sent, seen)
    assert [round(x, 3) for x in latencies] == [1.2, 0.7, 1.0] and unseen == 1


def test_lienthong_bench_peer_runs_both_sides_on_the_same_events_and_prints_the_figures(capsys):
    """The peer bench end to end on a tiny input (figures printed, never asserted on)."""
    pytest.importorskip("quixstreams", reason="the bench extra: pip install -e '.[bench]'")
    from bench.peer import main

    figures = main(events=300, batch_size=50)
    assert figures.events == 300
    assert figures.singles is not None and figures.singles.counted == 300
    assert figures.batched is not None and figures.batched.counted == 300
    assert figures.peer is not None and figures.peer.counted + figures.peer.duplicates == 300
    unique = len({e["event_id"] for e in build_events(300, seed=6)})
    assert figures.peer.counted == unique  # the peer dedupes as we do
    out = capsys.readouterr().out
    assert "peer: Quix Streams, single JSON messages" in out and "ours single-event / peer: x" in out
