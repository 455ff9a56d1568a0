"""``lienthong status``: one screen an operator reads before anything else.

It asks the two things that can be down separately: the broker (topics and
partition counts, through the Kafka admin API) and a worker (its health, consumer
lag from ``/metrics``, KPIs and open flags over HTTP). A worker that does not
answer is an error (exit 1), because everything else on the screen would be stale.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import click

from hubbase.settings import Settings
from hubbase.topic_admin import mismatch_message, partition_mismatches, topic_partitions
from schemas.topics import ALL_TOPICS

HTTP_TIMEOUT_S = 5.0
#: KPIs shown, in the order the city reports them.
KPI_LINES = (
    ("id_cards_issued", "ID cards issued"),
    ("eid_level2_activated", "e-ID level 2 activated"),
    ("insurance_synced", "insurance synced"),
    ("insurance_sync_failed", "insurance sync failed"),
    ("checkins_by_id_card", "check-ins by ID card"),
    ("birth_chain_received", "birth chains received"),
    ("birth_chain_completed", "birth chains completed"),
    ("death_chain_received", "death chains received"),
    ("death_chain_completed", "death chains completed"),
    ("procedures_on_time_rate", "procedures on time"),
    ("welfare_cashless_share", "welfare cashless share"),
    ("events_total", "events"),
    ("events_duplicate", "duplicates"),
    ("events_dead_lettered", "dead-lettered"),
    ("flags_open", "flags open"),
)


class WorkerUnreachable(Exception):
    pass


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 503:  # /healthz of a worker that answers but cannot do its job: read why
            return bytes(exc.read())
        raise WorkerUnreachable(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WorkerUnreachable(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def _get_json(url: str) -> Any:
    return json.loads(_get(url))


def broker_topics(bootstrap: str) -> dict[str, int]:
    """Partition count of each hub topic that exists on the broker (raises if unreachable)."""
    return topic_partitions(bootstrap, ALL_TOPICS, client_id="lienthong-status")


def lag_by_topic(metrics_text: str) -> dict[str, int]:
    """Consumer lag of this worker summed per topic, from its Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    lag: Counter[str] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "lienthong_consumer_lag_messages":
            for sample in family.samples:
                lag[sample.labels["topic"]] += int(sample.value)
    return dict(lag)


def _fmt(name: str, value: Any) -> str:
    if value is None:  # a rate with no denominator
        return "—"
    if isinstance(value, float) and ("rate" in name or "share" in name):
        return f"{value:.1%}"
    return f"{value:,}"


def _broker_section(settings: Settings) -> None:
    click.echo("Broker")
    if not settings.broker:
        click.echo("  not configured: set LIENTHONG_BROKER or --broker to check topics")
        return
    try:
        topics = broker_topics(settings.broker)
    except Exception as exc:  # noqa: BLE001 - any admin failure means the same to an operator
        click.echo(f"  {settings.broker}: UNREACHABLE ({exc.__class__.__name__}: {exc})")
        return
    click.echo(f"  {settings.broker}: reachable, {len(topics)}/{len(ALL_TOPICS)} hub topics")
    for topic in ALL_TOPICS:
        partitions = topics.get(topic)
        line = "MISSING" if partitions is None else f"{partitions} partitions"
        if partitions is not None and partitions != settings.partitions:
            line += f"  WRONG: expected {settings.partitions}"
        click.echo(f"  {topic:<24} {line}")
    mismatches = partition_mismatches(topics, settings.partitions)
    if mismatches:
        click.echo(f"  problem: {mismatch_message(mismatches, settings.partitions)}")


def print_status(settings: Settings, url: str) -> None:
    """Print broker, worker, health, lag, KPIs and open flags; exit 1 if the worker is unreachable."""
    base = url.rstrip("/")
    _broker_section(settings)
    try:
        health = _get_json(f"{base}/healthz")
        lag = lag_by_topic(_get(f"{base}/metrics").decode())
        kpis = _get_json(f"{base}/api/kpis")["kpis"]
        flags = _get_json(f"{base}/api/flags?status=OPEN&limit=1")  # totals cover every page
    except WorkerUnreachable as exc:
        click.echo(f"Worker\n  {base}: UNREACHABLE ({exc})", err=True)
        click.echo("error: no worker answered; start one with `lienthong worker` or pass --url", err=True)
        sys.exit(1)
    click.echo("Worker")
    click.echo(f"  {base}: {health['status']} ({health['worker']}), owns partitions "
               f"{health['partitions_owned']}, {health['messages']:,} messages processed")
    verification = health.get("signature_verification", "unknown")
    click.echo(f"  signature verification: {verification}"
               + ("  (LIENTHONG_VERIFY_SIGNATURES=false: unsigned messages are counted)" if verification == "off" else ""))
    problems = health.get("problems") or []
    click.echo(f"Health: {'UNHEALTHY: ' + '; '.join(problems) if problems else 'ok'}")
    click.echo(f"Consumer lag: {sum(lag.values()):,} messages")
    for topic, n in sorted(lag.items()):
        if n:
            click.echo(f"  {topic:<24} {n:,}")
    click.echo("KPIs")
    for name, label in KPI_LINES:
        click.echo(f"  {label:<26} {_fmt(name, kpis.get(name, 0))}")
    by_type = Counter(flags["by_type"])
    click.echo(f"Open flags: {flags['total']:,}")
    for flag_type, n in by_type.most_common():
        click.echo(f"  {flag_type:<26} {n:,}")
