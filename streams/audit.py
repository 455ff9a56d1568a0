"""The audit record: a hash chain of every accepted message, on ``lienthong.audit``.

Each message the worker accepts (its signature checked) gets one record: agency,
key id, topic, partition, offset, SHA-256 of the value bytes and the message's
Kafka time; no personal data. Each record carries the hash of the previous record
of the same chain and its own hash over all its fields, so an altered, removed or
reordered record breaks the chain where it happened.

One chain per source topic-partition, because that is the order the worker is
guaranteed to apply messages in, on every run. The chain's head (the last record)
lives in the partition's offset-fenced state (meta store ``audit:<topic>``), so it
is committed atomically with the message's counts: a worker that crashes and
replays re-computes the *identical* record for a message it had not committed, and
re-sends the stored one for a message it had (see ``streams.app``). The verifier
therefore reads a record seen twice as a duplicate, never as a break.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.signing import Proof
from streams.state import Change, Delta, SourcePosition
from streams.stores import META

#: Meta-store key prefix of a chain's head (the last record), per source topic.
HEAD_KEY = "audit:"
#: ``prev`` of a chain's first record.
GENESIS = "0" * 64
FIELDS = ("chain", "agency", "key_id", "topic", "partition", "offset", "value_sha256", "time", "events", "prev")

AuditRecord = dict[str, Any]


def chain_of(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def record_hash(record: AuditRecord) -> str:
    """SHA-256 of the record's fields (not its own hash) in a canonical JSON form."""
    body = {name: record.get(name) for name in FIELDS}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def append(change: Change, where: SourcePosition, value: bytes, proof: Proof | None, events: list[Any]) -> AuditRecord:
    """The next record of the message's chain, kept as the chain's head in ``change``."""
    head = change.get(META, HEAD_KEY + where.topic)
    agency = proof.agency if proof is not None else (events[0]["source"] if events else "")
    record: AuditRecord = {
        "chain": chain_of(where.topic, where.partition),
        "agency": agency,
        "key_id": proof.key_id if proof is not None else "",  # "": verification was off
        "topic": where.topic,
        "partition": where.partition,
        "offset": where.offset,
        "value_sha256": hashlib.sha256(value).hexdigest(),
        "time": where.timestamp,
        "events": len(events),
        "prev": head["hash"] if head else GENESIS,
    }
    record["hash"] = record_hash(record)
    change.set(META, HEAD_KEY + where.topic, record)
    return record


def record_of_delta(delta: Delta) -> AuditRecord | None:
    """The audit record a committed one-message delta made, to send again when its message is replayed."""
    for key, value in delta.put.get(META, {}).items():
        if key.startswith(HEAD_KEY) and value is not None and value.get("offset") == delta.offset:
            return dict(value)
    return None


def records_of_delta(delta: Delta) -> list[AuditRecord]:
    """Every audit record a committed delta made, in chain order (a group's: one per accepted message)."""
    if delta.audits:
        return [dict(record) for record in delta.audits]
    record = record_of_delta(delta)
    return [] if record is None else [record]


def encode(record: AuditRecord) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


# -- verification -----------------------------------------------------------------


@dataclass
class Break:
    """Where a chain stops being provable, and why."""

    chain: str
    position: str
    reason: str

    def __str__(self) -> str:
        return f"chain {self.chain} breaks at {self.position}: {self.reason}"


@dataclass
class Verification:
    records: int = 0
    duplicates: int = 0
    chains: dict[str, str] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify(records: Iterable[tuple[str, bytes]]) -> Verification:
    """Recompute every chain from ``(position, value)`` pairs in topic order.

    A record must hash to its ``hash`` (else it was altered) and name the current
    head of its chain as ``prev`` (else one was removed or the order changed). A
    record identical to one already seen is a replay's re-send: counted as a
    duplicate. After a chain's first break, its later records are not judged:
    the first break is what an operator must look at.
    """
    result = Verification()
    seen: set[str] = set()
    broken: set[str] = set()
    for position, value in records:
        result.records += 1
        try:
            record = orjson.loads(value)
            chain, claimed = str(record["chain"]), str(record["hash"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            result.breaks.append(Break("?", position, "not an audit record"))
            continue
        if chain in broken:
            continue
        if record_hash(record) != claimed:
            result.breaks.append(Break(chain, position, "the record was altered (its hash does not match its fields)"))
            broken.add(chain)
            continue
        if claimed in seen:
            result.duplicates += 1
            continue
        head = result.chains.get(chain, GENESIS)
        if record.get("prev") != head:
            result.breaks.append(Break(
                chain, position,
                f"offset {record.get('offset')} follows {str(record.get('prev'))[:12]}…, "
                f"not the chain's last record {head[:12]}… (a record was removed or reordered)",
            ))
            broken.add(chain)
            continue
        seen.add(claimed)
        result.chains[chain] = claimed
    return result
