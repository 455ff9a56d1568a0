"""State on disk (streams/store.py): the same state as in memory, reopened without a fold."""

from __future__ import annotations

import asyncio
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.onboarding import august_cards, july_cards
from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from streams.flags import default_rules
from streams.processor import Processor
from streams.restore import DiskStates
from streams.state import Delta, PartitionState
from streams.store import COUNTER_CACHE_FACTOR, DiskPartitionState, PartitionDB
from streams.view import CityView

CODEC = EventCodec()
CARDS = 3_000


@cache
def messages() -> list[tuple[int, bytes, int, Any]]:
    """The same messages on every call (cards have random ids). July cards in batches of 100 (one re-sent: duplicates), then August cards one by one (deadlines due)."""
    cards = july_cards(CARDS)
    out = []
    for start in range(0, len(cards), 100):
        batch = cards[start:start + 100]
        out.append((len(out), CODEC.encode_batch([CODEC.encode(e) for e in batch]), batch[0]["occurred_at"],
                    frozenset()))
    out.append((len(out), out[3][1], out[3][2], frozenset()))
    for card in august_cards(20, first=CARDS):
        out.append((len(out), CODEC.encode(card), card["occurred_at"], None))
    return out


def run(processor: Processor, batch: list[tuple[int, bytes, int, Any]]) -> list[Delta]:
    deltas = []
    for offset, value, at, idle in batch:
        outcome = processor.process(IDENTITY, 0, offset, value, at, now_ms=at, idle=idle)
        if outcome.delta is not None:
            deltas.append(outcome.delta)
    return deltas


def on_disk(path: Path, cache: int = 50) -> Processor:
    processor = Processor(CODEC, default_rules(), deadline_step=200)
    processor.adopt(DiskPartitionState(0, PartitionDB(path), cache_entries=cache))
    return processor


def everything(state: PartitionState) -> dict[str, Any]:
    return {
        "applied": dict(state.applied),
        "seq": state.seq,
        "counters": {k: v for k, v in state.counters.items() if v},
        "stores": {name: dict(store.items()) for name, store in state.stores.items() if len(store)},
        "buckets": sorted(state.seen),
    }


@cache
def reference() -> Processor:
    processor = Processor(CODEC, default_rules(), deadline_step=200)
    run(processor, messages())
    return processor


def test_a_partition_on_disk_ends_in_the_same_state_as_in_memory(tmp_path):
    disk = on_disk(tmp_path / "p0")
    run(disk, messages())
    expected = everything(reference().state(0))
    assert expected["stores"]["flags"] or expected["stores"]["rolled"]  # deadlines fell due: flags to compare
    assert everything(disk.state(0)) == expected


def test_a_state_reopened_from_its_database_goes_on_exactly_without_a_fold(tmp_path):
    batch = messages()
    first = on_disk(tmp_path / "p0")
    run(first, batch[:20])
    first.state(0).db.close()  # type: ignore[attr-defined]
    again = on_disk(tmp_path / "p0")
    # a replay of what the fence covers is skipped; the rest goes on
    assert all(again.process(IDENTITY, 0, o, v, at, now_ms=at, idle=i).skipped for o, v, at, i in batch[:20])
    run(again, batch[20:])
    assert everything(again.state(0)) == everything(reference().state(0))


def test_a_duplicate_event_id_is_caught_from_disk_after_a_reopen(tmp_path):
    batch = messages()
    first = on_disk(tmp_path / "p0")
    run(first, batch[:10])
    first.state(0).db.close()  # type: ignore[attr-defined]
    again = on_disk(tmp_path / "p0")
    offset, value, at, idle = batch[3]
    outcome = again.process(IDENTITY, 0, 10_000, value, at, now_ms=at, idle=idle)
    assert sum(outcome.duplicates.values()) == 100 and not outcome.accepted


def test_a_fold_of_the_changelog_into_a_database_equals_the_live_state(tmp_path):
    deltas = run(Processor(CODEC, default_rules(), deadline_step=200), messages())
    state = DiskPartitionState(0, PartitionDB(tmp_path / "p0"))
    state.keep_deltas = False
    for delta in [Delta.decode(d.encode()) for d in deltas]:
        state.apply(delta)
    assert everything(state) == everything(reference().state(0))


def test_each_applied_delta_is_kept_until_its_offset_is_committed(tmp_path):
    disk = on_disk(tmp_path / "p0")
    deltas = run(disk, messages()[:5])
    db = disk.state(0).db  # type: ignore[attr-defined]
    assert db.kept(IDENTITY, 4) == deltas[4].encode()
    db.forget_kept_below(IDENTITY, 4)
    assert db.kept(IDENTITY, 3) is None and db.kept(IDENTITY, 4) is not None


def test_memory_holds_no_more_subjects_than_the_cache_allows(tmp_path):
    disk = on_disk(tmp_path / "p0", cache=50)
    run(disk, messages())
    state = disk.state(0)
    assert sum(1 for _ in state.stores["citizens"].items()) >= CARDS
    assert all(len(store.cache) <= 50 for name, store in state.stores.items() if name != "meta")


def test_looking_up_absent_keys_leaves_a_stores_cache_to_the_values_it_holds(tmp_path: Path) -> None:
    state = DiskPartitionState(0, PartitionDB(tmp_path / "p0"), cache_entries=10, stores=("flags",))
    flags = state.stores["flags"]
    flags["open"] = {"status": "OPEN"}
    assert all(flags.get(f"absent-{i}") is None for i in range(100))
    assert "absent-1" not in flags
    assert flags.cache == {"open": {"status": "OPEN"}}  # type: ignore[attr-defined]
    del flags["open"]
    assert flags.get("open") is None and "open" not in flags  # a deletion is remembered as one
    state.db.close()


def test_a_disk_state_keeps_its_counters_on_disk_and_only_the_recent_ones_in_memory(tmp_path: Path) -> None:
    state = DiskPartitionState(0, PartitionDB(tmp_path / "p0"), cache_entries=1)
    state.apply(Delta(0, "t", 0, inc={f"m|w|2024-06-{d:02d}": d for d in range(1, 31)}))
    state.apply(Delta(1, "t", 1, inc={"m|w|2024-06-01": 5}))  # read back from disk: out of the cache
    assert len(state.counters.cache) <= COUNTER_CACHE_FACTOR < 30  # type: ignore[attr-defined]
    assert state.counters.get("m|w|2024-06-01") == 6 and state.counters["m|w|2024-06-30"] == 30
    state.db.close()
    reopened = DiskPartitionState(0, PartitionDB(tmp_path / "p0"), cache_entries=10)
    assert dict(reopened.counters.items()) == {f"m|w|2024-06-{d:02d}": d + 5 * (d == 1) for d in range(1, 31)}


def test_a_snapshot_streamed_in_parts_is_the_snapshot_built_whole(tmp_path, monkeypatch):
    """A partition on disk and in memory: the parts of ``snapshot_pieces`` join into ``snapshot_of``."""
    import orjson

    from streams import parts, view
    from streams.view import snapshot_of, snapshot_pieces

    monkeypatch.setattr(view, "SNAPSHOT_PIECE_ITEMS", 7)  # many pieces, joined by commas
    disk = on_disk(tmp_path / "p0")
    run(disk, messages())
    for state in (disk.state(0), reference().state(0)):
        whole = snapshot_of(state, "w1")
        assert len(whole["counters"]) > 7 * 10
        records = list(parts.split_stream(snapshot_pieces(state, "w1"), 64 * 1024))
        assert len(records) > 1 and all(len(record) <= 64 * 1024 for record in records)
        assembler = parts.Assembler()
        [joined] = [got for record in records if (got := assembler.add("0", record)) is not None]
        streamed = orjson.loads(joined)
        assert streamed.pop("as_of") >= whole.pop("as_of")
        assert streamed == whole


def test_over_an_empty_changelog_a_database_is_trusted_only_while_it_keeps_every_delta_it_applied(
    tmp_path: Path,
) -> None:
    """Killed before its first commit: its own, ahead of the log. Once it committed (and forgot
    deltas), an empty log is another log: an embedded broker restarted, a topic recreated."""
    from streams.changelog import Tail
    from streams.restore import trusted

    processor = on_disk(tmp_path / "p0")
    run(processor, messages()[:3])
    db = processor.states[0].db  # type: ignore[attr-defined]
    assert trusted(db, None)
    assert trusted(db, Tail(db.writer, 3, 2))
    assert not trusted(db, Tail("another-database", 3, 2))
    db.forget_kept_below(IDENTITY, 2)  # offsets 0 and 1 committed: their deltas were flushed
    assert not trusted(db, None)
    assert trusted(db, Tail(db.writer, 3, 2))


def test_the_rocksdb_memory_of_every_open_database_is_reported(tmp_path: Path) -> None:
    from streams import store

    processor = on_disk(tmp_path / "p0")
    run(processor, messages()[:5])
    db = processor.states[0].db  # type: ignore[attr-defined]
    own = db.db.property_int_value("rocksdb.cur-size-all-mem-tables")
    usage = store.memory_usage()
    assert set(usage) == {"block_cache", "memtables", "table_readers"}
    assert own > 0 and usage["memtables"] >= own
    db.close()
    assert store.memory_usage()["memtables"] == usage["memtables"] - own


def _left_databases(root: Path, partitions: tuple[int, ...]) -> DiskStates:
    """The databases a killed worker left under ``root``, and its successor's DiskStates."""
    disk = DiskStates(root, "unused:9092", "unused-changelog", cache_entries=50)
    for partition in partitions:
        processor = on_disk(disk.path(partition))
        run(processor, messages()[:4])
        processor.states[0].db.close()  # type: ignore[attr-defined]
    return disk


def test_a_restarting_worker_opens_its_own_databases_with_their_counters_summed_while_it_joins(
    tmp_path: Path,
) -> None:
    disk = _left_databases(tmp_path, (0, 1))
    disk.warm_up()
    warmed = asyncio.run(disk.claim_warmed(0))
    assert warmed is not None and warmed.counter_totals is not None
    on_disk_now = {key: n for key, n in warmed.counters.items() if n}
    assert dict(warmed.counter_totals.items()) == on_disk_now

    view, processor = CityView(), Processor(CODEC, default_rules())
    view.track(processor)
    processor.adopt(warmed)  # the view adds the sum, row by row
    assert dict(view.counters.items()) == on_disk_now and warmed.counter_totals is None


def test_a_warmed_database_of_a_partition_given_to_another_worker_is_closed(tmp_path: Path) -> None:
    disk = _left_databases(tmp_path, (0, 1))
    disk.warm_up()
    asyncio.run(disk.claim_warmed(0))
    disk.release_unclaimed(keep=[0])
    deadline = time.monotonic() + 10
    while True:  # closed once its warm-up is done: its lock is free again
        try:
            PartitionDB(disk.path(1)).close()
            break
        except Exception:
            assert time.monotonic() < deadline, "partition 1's database stayed open"
            time.sleep(0.05)
    assert not disk.warming
