"""Records too large for the broker, split into parts that a reader takes all or none of.

A delta (or a partition snapshot) is normally one record. One that would be
larger than ``LIENTHONG_MAX_RECORD_BYTES`` is written as ``n`` part records
instead, each marked with the digest of the whole value, its index and ``n``.
A reader applies a value only when all ``n`` parts with one digest are there:

* **Changelog.** The parts of one delta are table keys ``<delta key>#<index>``,
  written while the message is the current event, so they go to the same
  changelog partition and are flushed before the source offset is committed.
  A worker killed between parts leaves an incomplete set: the fold ignores it
  (its message is above the fence and its offset uncommitted, so it is read
  again and written again, possibly as another set: the digest tells the sets
  apart). A delta is therefore still applied entirely or not at all.
* **Snapshots.** The parts of one snapshot go to one partition of
  ``lienthong.aggregates`` in order; the view assembles them before it accepts
  the snapshot (``Assembler``). A snapshot is encoded as it is sent
  (:func:`split_stream`), so the worker never holds a whole one: its parts are
  marked with a random set id instead of a digest, and the count only on the
  last part (0 on the others: more to come).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

MARK = b"\x00LTPART|"
#: Room left in a record for its key, headers and the part header.
OVERHEAD = 1024


def split(value: bytes, limit: int) -> list[bytes]:
    """``value`` as one record if it fits in ``limit`` bytes, else as marked parts that each fit.

    A value that itself begins with the mark is sent as a set of one part, never whole:
    it would be read as a part.
    """
    if len(value) + OVERHEAD <= limit and not is_part(value):
        return [value]
    size = max(1, limit - OVERHEAD)
    chunks = [value[i:i + size] for i in range(0, len(value), size)]
    digest = hashlib.blake2b(value, digest_size=8).hexdigest().encode()
    count = len(chunks)
    return [MARK + b"%s|%d|%d|" % (digest, index, count) + chunk for index, chunk in enumerate(chunks)]


def split_stream(pieces: Iterable[bytes], limit: int) -> Generator[bytes, None, None]:
    """The records of a value given in pieces: one whole record if it fits in ``limit``, else
    marked parts, each yielded as soon as it is full (memory: a part, not the value).

    The parts of one value share a random set id, and only the last carries the count
    (the others 0: the count is not known until the value ends).
    """
    size = max(1, limit - OVERHEAD)
    pending = bytearray()
    set_id = os.urandom(8).hex().encode()
    index = 0
    for piece in pieces:
        pending += piece
        while len(pending) > size:
            yield MARK + b"%s|%d|0|" % (set_id, index) + bytes(pending[:size])
            del pending[:size]
            index += 1
    if index == 0 and len(pending) + OVERHEAD <= limit and not pending.startswith(MARK):
        yield bytes(pending)
        return
    yield MARK + b"%s|%d|%d|" % (set_id, index, index + 1) + bytes(pending)


def is_part(value: bytes) -> bool:
    return value.startswith(MARK)


def parse(value: bytes) -> tuple[str, int, int, bytes]:
    """(digest, index, count, chunk) of a part record."""
    digest, index, count, chunk = value[len(MARK):].split(b"|", 3)
    return digest.decode(), int(index), int(count), chunk


def part_key(key: str, index: int) -> str:
    return f"{key}#{index:04d}"


def base_key(key: str) -> str:
    """The key of the whole value a part key belongs to (itself for a whole record)."""
    head, sep, tail = key.rpartition("#")
    return head if sep and tail.isdigit() else key


@dataclass
class _PartSet:
    """The parts of one value received so far, and how many there are once a part says so
    (every part of :func:`split`'s, only the last of :func:`split_stream`'s)."""

    chunks: dict[int, bytes] = field(default_factory=dict)
    count: int = 0


class Assembler:
    """Collects parts by base key; hands out each value once all of its parts are there."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, _PartSet]] = {}

    def add(self, key: str, value: bytes) -> bytes | None:
        """The whole value when ``value`` completes it (or is whole), else None (kept for later)."""
        if not is_part(value):
            self._parts.pop(key, None)
            return value
        digest, index, count, chunk = parse(value)
        part_set = self._parts.setdefault(key, {}).setdefault(digest, _PartSet())
        part_set.chunks[index] = chunk
        part_set.count = count or part_set.count
        got, count = part_set.chunks, part_set.count
        if not count or len(got) < count or any(i not in got for i in range(count)):
            return None
        del self._parts[key]
        return b"".join(got[i] for i in range(count))


def assemble(items: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """Whole values by base key from whole and part records; incomplete sets are left out."""
    out: dict[str, bytes] = {}
    assembler = Assembler()
    for key, value in items:
        whole = assembler.add(base_key(key) if is_part(value) else key, value)
        if whole is not None:
            out[base_key(key)] = whole
    return out
