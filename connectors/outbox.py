"""The transactional outbox poller: an agency's PostgreSQL table, published in order.

The agency's application writes its business change and an outbox row in one
database transaction, so an event exists if and only if the change committed.
This poller turns unsent rows into events: it locks a batch in id order, publishes
it, waits for the broker's acknowledgement (acks=all) and only then marks the rows
sent, in the same transaction. A crash after publishing but before the commit
re-publishes the same rows; their event ids are derived from the row, so they are
the same ids and the hub counts them once. Nothing is lost, nothing counted twice.

A row that breaks the contract is marked with its error (field and reason), logged
with its row id, and skipped: it never blocks the rows behind it.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka.errors import KafkaError
from psycopg import sql

from connectors.json_event import event_from_json, redact
from connectors.sdk import Publisher, check_connector_secrets
from hubbase.logs import get_logger
from hubbase.settings import MissingSecret, Settings
from schemas.errors import ContractError
from schemas.pseudonym import Pseudonymiser

log = get_logger(__name__)

#: Namespace of derived outbox event ids (uuid5); fixed forever, or re-publishes would double count.
OUTBOX_NAMESPACE = uuid.UUID("0b7e2f44-3c1d-4f58-9e0a-7d2c6b1a5e93")
BATCH_ROWS = 500
HEARTBEAT_INTERVAL = 30.0
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def table_identifier(table: str) -> sql.Identifier:
    """``table`` or ``schema.table`` as a safely quoted identifier; anything else is refused."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(f"{table!r} is not a table name (letters, digits, _; optionally schema.table)")
    return sql.Identifier(*parts)


def ensure_outbox(conn: psycopg.Connection[Any], table: str) -> None:
    """Create the outbox table (see docs/connectors.md) and its index of unsent rows, if missing."""
    name = table_identifier(table)
    index = sql.Identifier(f"{table.split('.')[-1]}_unsent_idx")
    with conn.transaction():
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " id bigserial PRIMARY KEY,"
            " event_type text NOT NULL,"
            " payload jsonb NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " sent_at timestamptz,"
            " error text)"
        ).format(name))
        conn.execute(sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} (id) WHERE sent_at IS NULL AND error IS NULL"
        ).format(index, name))


def outbox_event_id(agency: str, database: str, table: str, row_id: int) -> str:
    """The event id of a row that has none: the same for every publish of that row.

    Agency and database are part of it so that two agencies' ``outbox`` row 1 are
    two different events, not one event seen twice.
    """
    return str(uuid.uuid5(OUTBOX_NAMESPACE, f"{agency}:{database}:{table}:{row_id}"))


@dataclass
class BatchResult:
    """What one poll did."""

    published: int = 0
    refused: int = 0
    last_id: int | None = None

    @property
    def rows(self) -> int:
        return self.published + self.refused


class OutboxPoller:
    """Drains one agency's outbox table through a :class:`Publisher`, batch by batch."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        publisher: Publisher,
        *,
        agency: str,
        table: str,
        pseudonymiser: Pseudonymiser,
        batch: int = BATCH_ROWS,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("the outbox connection must be in autocommit mode (each batch is its own transaction)")
        self.conn = conn
        self.publisher = publisher
        self.agency = agency
        self.table = table
        self.pseudonymiser = pseudonymiser
        self.batch = batch
        self.database = conn.info.dbname
        self._name = table_identifier(table)

    def event_of(self, row_id: int, event_type: str, payload: Any) -> dict[str, Any]:
        """The row as a valid event (``ContractError`` if not); its id derived when absent."""
        if not isinstance(payload, dict):
            raise ContractError("payload", "must be a JSON object")
        if payload.get("event_type", event_type) != event_type:
            raise ContractError("event_type", f"the payload says {payload['event_type']!r}, the row {event_type!r}")
        return event_from_json(
            {**payload, "event_type": event_type},
            agency=self.agency,
            pseudonymiser=self.pseudonymiser,
            default_event_id=outbox_event_id(self.agency, self.database, self.table, row_id),
        )

    def drain_batch(self) -> BatchResult:
        """Publish the next unsent rows in id order; mark them once the broker acknowledged.

        One transaction: the rows stay locked (``FOR UPDATE``) while they are
        published, and an exception anywhere (broker down, process killed) leaves
        them unsent, to be published again with the same ids.
        """
        result = BatchResult()
        with self.conn.transaction():
            rows = self.conn.execute(
                sql.SQL(
                    "SELECT id, event_type, payload FROM {} WHERE sent_at IS NULL AND error IS NULL"
                    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                ).format(self._name),
                (self.batch,),
            ).fetchall()
            sent: list[int] = []
            refused: list[tuple[str, int]] = []
            for row_id, event_type, payload in rows:
                try:
                    event = self.event_of(row_id, event_type, payload)
                except ContractError as exc:
                    error = redact(f"{exc.field}: {exc.reason}")
                    refused.append((error, row_id))
                    log.warning("outbox_row_refused", table=self.table, row_id=row_id, field=exc.field,
                                reason=redact(exc.reason))
                    continue
                self.publisher.publish(event)
                sent.append(row_id)
            if sent:
                self.publisher.flush()  # raises unless every event was acknowledged
                self.conn.execute(
                    sql.SQL("UPDATE {} SET sent_at = now() WHERE id = ANY(%s)").format(self._name), (sent,)
                )
            if refused:
                with self.conn.cursor() as cur:
                    cur.executemany(sql.SQL("UPDATE {} SET error = %s WHERE id = %s").format(self._name), refused)
            result.published, result.refused = len(sent), len(refused)
            result.last_id = rows[-1][0] if rows else None
        return result

    def drain(self) -> BatchResult:
        """Publish every unsent row, batch after batch, until none is left."""
        total = BatchResult()
        while True:
            result = self.drain_batch()
            if not result.rows:
                return total
            total.published += result.published
            total.refused += result.refused
            total.last_id = result.last_id

    def try_lead(self) -> bool:
        """Take the table's session advisory lock: one active poller per table keeps id order.

        A second poller started as a standby waits here and takes over when the
        first one's connection ends.
        """
        key = f"lienthong-outbox:{self.table}"
        row = self.conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
        return bool(row and row[0])


def run_outbox(
    settings: Settings,
    *,
    dsn: str,
    agency: str,
    table: str,
    interval: float,
    once: bool,
    batch: int = BATCH_ROWS,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> None:
    """``lienthong outbox``: poll until SIGTERM/Ctrl-C (or, with ``once``, until drained).

    A stop request lets the batch in hand finish (published and marked), then the
    publisher is flushed and closed. Heartbeats are sent from the poll loop, so
    they stop when the agency's database stops answering: a silent agency is seen.
    """
    import click

    from hubbase.topic_admin import ensure_topics

    try:
        table_identifier(table)
        check_connector_secrets(settings, "the outbox connector", [agency])
    except (ValueError, MissingSecret) as exc:
        raise click.UsageError(str(exc)) from None
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    ensure_topics(settings.broker, settings.partitions)
    publisher = Publisher(settings.broker, connector=f"outbox-{agency.lower()}", batch_size=1,
                          heartbeat_source=agency)
    pseudonymiser = Pseudonymiser(settings.resolved_pseudonym_key())
    total = BatchResult()
    last_beat = 0.0
    conn: psycopg.Connection[Any] | None = None
    log.info("outbox_started", agency=agency, table=table, once=once)
    try:
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(dsn, autocommit=True, application_name=f"lienthong-outbox-{agency.lower()}")
                    ensure_outbox(conn, table)
                    poller = OutboxPoller(conn, publisher, agency=agency, table=table,
                                          pseudonymiser=pseudonymiser, batch=batch)
                    while not poller.try_lead():
                        if once:
                            raise click.ClickException(f"another poller is draining {table}")
                        log.info("outbox_standby", table=table)
                        if stop.wait(max(interval, 1.0)):
                            return
                result = poller.drain_batch()
            except psycopg.OperationalError as exc:
                if once:
                    raise click.ClickException(f"outbox database error: {redact(str(exc)).strip()}") from None
                log.error("outbox_database_error", table=table, error=redact(str(exc)).strip())
                if conn is not None:
                    conn.close()
                conn = None
                stop.wait(max(interval, 1.0))
                continue
            except (RuntimeError, KafkaError) as exc:  # not acknowledged: the batch stays unsent
                if once:
                    raise click.ClickException(f"the broker did not acknowledge: {redact(str(exc))}") from None
                log.error("outbox_publish_failed", table=table, error=redact(str(exc)))
                stop.wait(max(interval, 1.0))
                continue
            if time.monotonic() - last_beat >= heartbeat_interval:
                publisher.heartbeat()
                last_beat = time.monotonic()
            if result.rows:
                total.published += result.published
                total.refused += result.refused
                log.info("outbox_progress", table=table, published=result.published, refused=result.refused,
                         last_id=result.last_id, published_total=total.published, refused_total=total.refused)
                continue
            if once:
                break
            stop.wait(interval)
    finally:
        try:
            publisher.close()
        finally:
            if conn is not None:
                conn.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("outbox_stopped", table=table, published_total=total.published, refused_total=total.refused)
