"""``lienthong audit verify | show``: read ``lienthong.audit`` back and check or list it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from hubbase.settings import Settings
from schemas.topics import AUDIT
from streams.audit import verify

#: The topic is read until it has been quiet this long (Tansu under-reports end offsets).
READ_IDLE_MS = 3000


def read_audit(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """Every audit record as ``(position, value)``, each partition in offset order."""
    from kafka import KafkaConsumer, TopicPartition

    from hubbase.kafka_security import kafka_python_config

    consumer = KafkaConsumer(bootstrap_servers=settings.broker, group_id=None, enable_auto_commit=False,
                             consumer_timeout_ms=READ_IDLE_MS, client_id="lienthong-audit",
                             **kafka_python_config())
    try:
        partitions = sorted(consumer.partitions_for_topic(AUDIT) or ())
        if not partitions:
            raise click.ClickException(f"topic {AUDIT} does not exist on {settings.broker}")
        consumer.assign([TopicPartition(AUDIT, p) for p in partitions])
        consumer.seek_to_beginning()
        for message in consumer:
            yield f"{AUDIT} partition {message.partition} offset {message.offset}", message.value
    finally:
        consumer.close()


def verify_command(settings: Settings) -> int:
    result = verify(read_audit(settings))
    click.echo(f"{result.records} records, {len(result.chains)} chains, {result.duplicates} duplicates (replays)")
    if result.ok:
        click.echo("audit chain: ok")
        return 0
    click.echo(f"audit chain: BROKEN ({len(result.breaks)} chain(s))", err=True)
    for problem in result.breaks:
        click.echo(f"  {problem}", err=True)
    return 1


def parse_since(text: str | None) -> int:
    """``--since`` as epoch ms: ISO 8601 (``Z`` or an offset; a date alone is UTC midnight) or epoch ms."""
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("must be ISO 8601 (e.g. 2026-01-01T00:00:00+07:00) or epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def show_command(settings: Settings, agency: str | None, since_ms: int) -> int:
    seen: set[str] = set()
    shown = 0
    for _, value in read_audit(settings):
        try:
            record: dict[str, Any] = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if record.get("hash") in seen or (agency and record.get("agency") != agency):
            continue
        if int(record.get("time", 0)) < since_ms:
            continue
        seen.add(str(record.get("hash")))
        when = datetime.fromtimestamp(int(record["time"]) / 1000, UTC).isoformat(timespec="milliseconds")
        click.echo(f"{when}  {record['agency']:<16} key={record['key_id'] or '-':<18} "
                   f"{record['topic']}[{record['partition']}]@{record['offset']}  "
                   f"events={record['events']}  sha256={record['value_sha256'][:16]}…")
        shown += 1
    click.echo(f"{shown} records")
    return 0
