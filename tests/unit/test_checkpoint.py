"""Checkpoints (streams/checkpoint.py): a snapshot of a partition's database in parts, consistent while messages go on."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from schemas.codec import EventCodec
from schemas.topics import IDENTITY
from streams import checkpoint
from streams.checkpoint import Checkpoints, Marker
from streams.processor import Processor
from streams.store import DiskPartitionState, PartitionDB
from tests.unit.test_disk_state import everything, messages, on_disk, run

CODEC = EventCodec()


class Ack:
    """The broker's acknowledgement of a record, with its offset in the fake log."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return self


class Log:
    """A changelog partition: records in the order they were sent."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []

    def sender(self, partition: int) -> checkpoint.Send:
        async def send(key: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
            self.records.append((key, value))
            return Ack(len(self.records) - 1)
        return send


async def _nothing() -> None:
    return None


def writer(log: Log, threshold: int = 1, record_bytes: int = 8 * 1024) -> Checkpoints:
    return Checkpoints(log.sender, _nothing, _nothing, threshold, record_bytes)


def loaded(log: Log, path: Path, stores: tuple[Any, ...] = ()) -> DiskPartitionState:
    """A fresh database from the newest marker in ``log``, as a restore loads it (no broker)."""
    markers = [(offset, value) for offset, (key, value) in enumerate(log.records)
               if key.endswith("|done") and value is not None]
    offset, value = markers[-1]
    marker = Marker.decode(value, offset)
    db = PartitionDB(path)
    expected = 0
    for key, part in log.records[marker.first:marker.offset]:
        decoded = checkpoint.decode_part(part) if part is not None and checkpoint.is_checkpoint_key(key) else None
        if decoded is None or decoded[0] != marker.set_id:
            continue
        assert decoded[1] == expected
        batch = rocksdict.WriteBatch(raw_mode=True)
        for pair in checkpoint.decode_pairs(decoded[2]):
            batch.put(*pair)
        db.write(batch)
        expected += 1
    assert expected == marker.parts
    return DiskPartitionState(0, db, cache_entries=50, stores=stores)


def test_pairs_survive_their_encoding() -> None:
    pairs = [(b"c|a", b"1"), (b"s|citizens|x", b'{"k":"' + b"v" * 1000 + b'"}'), (b"", b"")]
    assert list(checkpoint.decode_pairs(checkpoint.encode_pairs(pairs))) == pairs


def test_a_checkpoint_is_the_state_at_its_sequence_though_messages_went_on_while_it_was_written(tmp_path):
    batches = messages()
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    log = Log()
    checkpoints = writer(log)
    run(processor, batches[:20])
    checkpoints.written(state, ["0000|identity|000000000019"], 10)
    at_checkpoint = copy.deepcopy(everything(state))
    asyncio.run(checkpoints.after_group(state))  # starts it, sends its first part
    assert checkpoints.writing and checkpoints.parts_sent == 1
    for message in batches[20:]:  # messages go on while the parts are sent, one per group
        run(processor, [message])
        asyncio.run(checkpoints.after_group(state))
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    assert checkpoints.completed == 1 and checkpoints.parts_sent > 3  # several parts, ≤ 8 KiB each
    restored = loaded(log, tmp_path / "restored", processor.stores)
    assert everything(restored) == at_checkpoint


def test_every_part_fits_in_a_record(tmp_path):
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, messages())
    log = Log()
    checkpoints = writer(log, record_bytes=16 * 1024)
    checkpoints.written(state, ["k"], 1)
    asyncio.run(checkpoints.after_group(state))
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    assert max(len(value or b"") for _, value in log.records) <= 16 * 1024


def test_after_its_marker_a_checkpoint_tombstones_what_was_written_before_it_and_nothing_after(tmp_path):
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, messages()[:5])
    log = Log()
    checkpoints = writer(log)
    checkpoints.written(state, ["0000|identity|000000000004", "0000|identity|000000000004#1"], 10)
    asyncio.run(checkpoints.after_group(state))
    checkpoints.written(state, ["0000|identity|000000000005"], 10**7)  # after the snapshot (and makes the next due)
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    tombstones = [key for key, value in log.records if value is None]
    assert tombstones == ["0000|identity|000000000004", "0000|identity|000000000004#1"]
    first_parts = [key for key, value in log.records if checkpoint.is_checkpoint_key(key)]
    # the next checkpoint tombstones this one's parts and marker, and the delta written after its snapshot
    asyncio.run(checkpoints.after_group(state))
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    tombstones = [key for key, value in log.records if value is None]
    assert set(tombstones[2:]) == {*first_parts, "0000|identity|000000000005"}


def test_a_checkpoint_is_due_after_the_threshold_and_as_many_bytes_as_the_last_one(tmp_path):
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, messages()[:10])
    log = Log()
    checkpoints = writer(log, threshold=1000)
    checkpoints.written(state, ["a"], 999)
    assert not checkpoints.due(state)
    checkpoints.written(state, ["b"], 1)
    assert checkpoints.due(state)
    asyncio.run(checkpoints.after_group(state))
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    size = checkpoints.progress[0].last
    assert size > 1000
    checkpoints.written(state, ["c"], size - 1)
    assert not checkpoints.due(state)
    checkpoints.written(state, ["d"], 1)
    assert checkpoints.due(state)


def test_no_checkpoint_with_a_threshold_of_zero(tmp_path):
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    checkpoints = writer(Log(), threshold=0)
    checkpoints.written(state, ["a"], 10**9)
    assert not checkpoints.due(state)


def test_a_revoked_partitions_checkpoint_is_abandoned_and_sends_nothing_more(tmp_path):
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, messages())
    log = Log()
    checkpoints = writer(log)
    checkpoints.written(state, ["a"], 1)
    asyncio.run(checkpoints.after_group(state))
    sent = len(log.records)
    checkpoints.abandon(0)
    state.db.close()
    asyncio.run(checkpoints.tick())
    assert len(log.records) == sent and not any(key.endswith("|done") for key, _ in log.records)


@pytest.mark.parametrize("key", ["0003|ckpt|000000000012|000001", "0003|ckpt|000000000012|done"])
def test_checkpoint_records_are_told_from_deltas_by_their_key(key):
    assert checkpoint.is_checkpoint_key(key)
    assert not checkpoint.is_checkpoint_key("0003|identity|000000000012")


def test_a_processor_goes_on_exactly_from_a_loaded_checkpoint(tmp_path):
    batches = messages()
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, batches[:20])
    log = Log()
    checkpoints = writer(log)
    checkpoints.written(state, ["a"], 1)
    asyncio.run(checkpoints.after_group(state))
    while checkpoints.writing:
        asyncio.run(checkpoints.tick())
    again = Processor(CODEC, processor.rules, deadline_step=200)
    again.adopt(loaded(log, tmp_path / "restored"))
    run(again, batches)  # the first 20 again: skipped by the fence
    run(processor, batches[20:])
    assert everything(again.state(0)) == everything(processor.state(0))
    assert IDENTITY in again.state(0).applied


def test_tombstones_go_out_a_bounded_batch_per_step(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "TOMBSTONES_PER_STEP", 3)
    processor = on_disk(tmp_path / "live")
    state: Any = processor.state(0)
    run(processor, messages()[:5])
    log = Log()
    checkpoints = writer(log, record_bytes=1024 * 1024)
    written = [f"0000|identity|{n:012d}" for n in range(10)]
    checkpoints.written(state, written, 10)
    asyncio.run(checkpoints.after_group(state))  # its one part
    asyncio.run(checkpoints.tick())  # its marker
    assert checkpoints.completed == 1 and not any(value is None for _, value in log.records)
    batches = []
    while checkpoints.writing:
        before = len(log.records)
        asyncio.run(checkpoints.tick())
        batches.append(len(log.records) - before)
    assert batches == [3, 3, 3, 1, 0]
    assert [key for key, value in log.records if value is None] == written
