"""The ``lienthong`` command: every way to run and operate the hub.

Settings come from ``LIENTHONG_*`` variables (see ``hubbase.settings``); flags
override them for one run. With no ``LIENTHONG_BROKER``, commands that need a
broker start the embedded one.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import structlog

from hubbase import logs
from hubbase.settings import Settings
from lienthong.cli_options import broker_option
from lienthong.cli_options import settings_of as _settings
from lienthong.deadletter_cli import deadletter
from schemas.vocabulary import AGENCIES

#: Batch linger of a file import (seconds): see ``import_``.
IMPORT_LINGER_S = 3600.0


def _refuse_without_secrets(check: Callable[[Settings], object], settings: Settings) -> None:
    """Run a service's secret check; a missing secret is a usage error with its message, not a traceback."""
    from hubbase.settings import MissingSecret
    from schemas.signing import KeyringError

    try:
        check(settings)
    except (MissingSecret, KeyringError) as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--broker", envvar="LIENTHONG_BROKER", default="", help="Kafka bootstrap servers (host:port,...). Empty: embedded broker.")
@click.option("--log-level", envvar="LIENTHONG_LOG_LEVEL", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, broker: str, log_level: str) -> None:
    """lienthong: event-driven integration hub between city agencies.

    Agencies publish change events to Kafka; Faust workers keep the city's
    counters exact and flag failures in data sharing; operators and dashboards
    read the results over HTTP, server-sent events and Prometheus metrics.
    """
    logs.configure(log_level)
    ctx.obj = Settings.from_env().with_(broker=broker, log_level=log_level)


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.pass_context
def broker(ctx: click.Context, port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory storage) until Ctrl-C.

    Every hub topic is created with LIENTHONG_PARTITIONS partitions before the
    broker's address is printed, so no client can auto-create one first.
    """
    from hubbase.broker import EmbeddedBroker, free_port

    embedded = EmbeddedBroker(port or free_port(host), host, partitions=_settings(ctx).partitions)
    embedded.start()
    click.echo(f"broker listening on {embedded.bootstrap}  (LIENTHONG_BROKER={embedded.bootstrap})")
    sys.stdout.flush()
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"]:
            if embedded.process is None or embedded.process.poll() is not None:
                raise click.ClickException("the broker exited unexpectedly")
            time.sleep(0.2)
    finally:
        embedded.stop()
        click.echo("broker stopped")


@main.command()
@broker_option
@click.option("--name", default=None, help="Worker name (data dir and logs); default host-pid.")
@click.option("--web-port", type=int, envvar="LIENTHONG_WEB_PORT", default=6066, show_default=True)
@click.pass_context
def worker(ctx: click.Context, name: str | None, web_port: int) -> None:
    """Run a stream worker: counters, flags and the HTTP API (dashboard on /)."""
    from streams.worker import broker_for, check_secrets, run_worker

    settings = _settings(ctx).with_(web_port=web_port)
    _refuse_without_secrets(check_secrets, settings)
    with broker_for(settings) as bootstrap:
        run_worker(settings, bootstrap, name)


@main.command("import")
@broker_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--agency", required=True, type=click.Choice(AGENCIES), help="The agency whose export this is.")
@click.option("--batch-size", type=int, default=500, show_default=True, help="Events per Kafka message (1: one event per message).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def import_(ctx: click.Context, file: Path, agency: str, batch_size: int, progress: bool) -> None:
    """Import a CSV export of agency records (raw citizen_id pseudonymised on import).

    Bad rows are reported with their line number and reason; good rows still go
    in; the exit code is 1 if any row was bad. Re-importing a file changes nothing.
    """
    from connectors.csv_import import import_csv
    from connectors.sdk import Publisher, check_connector_secrets
    from hubbase.topic_admin import ensure_topics
    from schemas.pseudonym import Pseudonymiser

    settings = _settings(ctx)
    if not settings.broker:
        raise click.UsageError("import needs a running broker: set LIENTHONG_BROKER or --broker")
    _refuse_without_secrets(lambda s: check_connector_secrets(s, "lienthong import", [agency]), settings)
    ensure_topics(settings.broker, settings.partitions)
    # A file is a backfill: batches fill at import speed, so they wait for full
    # (linger 1 h) rather than going out every 0.5 s at ~1/5 of the size, which
    # costs the workers ~4x per event; the heartbeat thread still sends what is
    # pending every 5 s, so a slow file or a quiet tail never sits in a batch.
    publisher = Publisher(settings.broker, connector=f"csv-import-{agency.lower()}", batch_size=batch_size,
                          heartbeat_source=agency, heartbeat_interval=5.0, linger=IMPORT_LINGER_S)
    try:
        report = import_csv(file, agency, publisher, Pseudonymiser(settings.resolved_pseudonym_key()), progress=progress)
    finally:
        publisher.close()
    for bad in report.bad:
        click.echo(str(bad), err=True)
    click.echo(f"imported {report.imported} events, {len(report.bad)} bad rows")
    sys.exit(0 if report.ok else 1)


@main.command()
@broker_option
@click.option("--seed", type=int, default=None,
              help="Same seed, same traffic (and the same event ids). Default: a fresh seed each run, printed.")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Events per second (wall clock).")
@click.option("--duration", type=float, default=None, help="Seconds to run (wall clock).")
@click.option("--events", type=int, default=None, help="Stop after this many events.")
@click.option("--days", type=float, default=7.0, show_default=True, help="Days of event time to spread the traffic over.")
@click.option("--start", default="2024-06-01T00:00:00+07:00", show_default=True, help="Event time of the first event.")
@click.option("--batch-size", type=int, default=100, show_default=True, help="Events per Kafka message.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the city (--events records) as one CSV export per agency into this folder; publish nothing.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def simulate(ctx: click.Context, seed: int | None, rate: float, duration: float | None, events: int | None,
             days: float, start: str, batch_size: int, csv_dir: Path | None, progress: bool) -> None:
    """Publish realistic city traffic: every flow, chains, failures, late and duplicate events.

    Each run draws a fresh seed unless --seed is given, so a second run (or a CSV
    export imported next to a running demo) adds new events instead of repeating
    the same event ids; the seed used is printed so a run can be replayed.
    """
    import secrets

    from connectors.simulator import export_csv, run_simulation

    if seed is None:
        seed = secrets.randbelow(2**31)
    click.echo(f"seed {seed}  (same traffic again: --seed {seed})")
    structlog.get_logger("lienthong.simulate").info("simulation_seed", seed=seed)

    if csv_dir is not None:
        if events is None:
            raise click.UsageError("--csv needs --events (how many records to write)")
        for agency, path in export_csv(csv_dir, seed=seed, events=events, days=days, start=start).items():
            click.echo(f"{agency}: {path}  (lienthong import {path} --agency {agency})")
        return
    settings = _settings(ctx)
    if not settings.broker:
        raise click.UsageError("simulate needs a running broker: set LIENTHONG_BROKER or --broker")
    from connectors.sdk import check_connector_secrets

    _refuse_without_secrets(lambda s: check_connector_secrets(s, "lienthong simulate", AGENCIES), settings)
    run_simulation(settings, seed=seed, rate=rate, duration=duration, events=events, days=days,
                   start=start, batch_size=batch_size, progress=progress)


@main.command()
@broker_option
@click.option("--port", type=int, envvar="LIENTHONG_GATEWAY_PORT", default=6070, show_default=True)
@click.option("--credentials", type=click.Path(path_type=Path), default=None,
              help="JSON file of agency credentials (else LIENTHONG_GATEWAY_CREDENTIALS).")
@click.pass_context
def gateway(ctx: click.Context, port: int, credentials: Path | None) -> None:
    """Run the HTTP gateway: agencies POST /v1/events (JSON), authenticated per agency."""
    from connectors.gateway import run_gateway

    settings = _settings(ctx).with_(gateway_port=port)
    if not settings.broker:
        raise click.UsageError("gateway needs a running broker: set LIENTHONG_BROKER or --broker")
    run_gateway(settings, credentials)


@main.command()
@broker_option
@click.option("--dsn", required=True, envvar="LIENTHONG_OUTBOX_DSN", help="PostgreSQL DSN of the agency database.")
@click.option("--agency", required=True, type=click.Choice(AGENCIES))
@click.option("--table", default="outbox", show_default=True)
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between polls when idle.")
@click.option("--once", is_flag=True, help="Drain the outbox once and exit.")
@click.pass_context
def outbox(ctx: click.Context, dsn: str, agency: str, table: str, interval: float, once: bool) -> None:
    """Publish an agency's transactional outbox table (PostgreSQL) in order."""
    from connectors.outbox import run_outbox

    settings = _settings(ctx)
    if not settings.broker:
        raise click.UsageError("outbox needs a running broker: set LIENTHONG_BROKER or --broker")
    run_outbox(settings, dsn=dsn, agency=agency, table=table, interval=interval, once=once)


@main.command()
@broker_option
@click.option("--url", default=None, help="Worker base URL (default http://127.0.0.1:$LIENTHONG_WEB_PORT).")
@click.pass_context
def status(ctx: click.Context, url: str | None) -> None:
    """Terminal summary: broker, topics, lag, KPIs and open flags."""
    from lienthong.status import print_status

    settings = _settings(ctx)
    print_status(settings, url or f"http://127.0.0.1:{settings.web_port}")


@main.group()
def audit() -> None:
    """The audit record (topic lienthong.audit): which agency sent which message, hash-chained.

    One chain per source topic-partition; each record holds the agency, key id,
    topic, partition, offset, SHA-256 of the message and its time, never personal
    data, plus the hash of the record before it.
    """


@audit.command("verify")
@broker_option
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Recompute every chain; report the first break of each (exit 1), or ok.

    A record re-sent identically after a worker restart is a duplicate, not a
    break; an altered, removed or reordered record is a break.
    """
    from lienthong.audit_log import verify_command

    settings = _settings(ctx)
    if not settings.broker:
        raise click.UsageError("audit verify needs a running broker: set LIENTHONG_BROKER or --broker")
    sys.exit(verify_command(settings))


@audit.command("show")
@broker_option
@click.option("--agency", type=click.Choice(AGENCIES), default=None, help="Only this agency's messages.")
@click.option("--since", default=None, help="Only messages from this time on (ISO 8601 or epoch ms).")
@click.pass_context
def audit_show(ctx: click.Context, agency: str | None, since: str | None) -> None:
    """List accepted messages: time, agency, key id, topic[partition]@offset, events, value digest."""
    from lienthong.audit_log import parse_since, show_command

    settings = _settings(ctx)
    if not settings.broker:
        raise click.UsageError("audit show needs a running broker: set LIENTHONG_BROKER or --broker")
    sys.exit(show_command(settings, agency, parse_since(since)))


@main.group()
def schemas() -> None:
    """Event contracts: compatibility checks and generated docs."""


@schemas.command("check")
@click.option("--release", "release_", is_flag=True,
              help="After a clean check, lock every new .avsc as released (schemas/avro/RELEASED.json).")
def schemas_check(release_: bool) -> None:
    """Check every schema version reads data written by every older one."""
    from schemas.evolution import check_all, release

    problems = release() if release_ else check_all()
    for problem in problems:
        click.echo(problem, err=True)
    click.echo("schemas: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    sys.exit(1 if problems else 0)


@schemas.command("docs")
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/asyncapi.json"), show_default=True)
def schemas_docs(out: Path) -> None:
    """Write an AsyncAPI 3 document of the hub's topics and messages."""
    from schemas.asyncapi import write_asyncapi

    write_asyncapi(out)
    click.echo(f"wrote {out}")


@main.command()
@click.option("--events", type=int, default=200_000, show_default=True,
              help="Simulated city events in the backlog.")
@click.option("--batch-size", type=int, default=500, show_default=True,
              help="Events per Kafka message (EventBatch), as the importer sends them.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Also run this many workers in one group, after the single worker, and report the scaling.")
@click.option("--flag-churn", is_flag=True,
              help="Also replay the backlog as a live run (one event at a time, as sent) and count the "
                   "worker's flag changes about flags the live run never announces (spurious flags).")
@click.option("--onboarding", "onboarding", type=int, default=0, metavar="CARDS",
              help="Instead: the police-onboarding backlog (CARDS July ID cards of distinct citizens with social "
                   "insurance silent, then August events that make every July SYNC_MISSING deadline due at "
                   "once), unbounded (as before issue 12) and bounded in one run: survival, peak RSS, time to "
                   "settle and the largest record on the changelog, aggregates and alerts topics.")
@click.option("--soak", is_flag=True,
              help="Instead: the soak run (not a timed test). --events ID cards of distinct citizens (give e.g. "
                   "--events 2000000) through one worker: RSS at every 250,000 counted, SIGKILL and restart at "
                   "250,000 and at the end (own data dir, then a fresh one) with the time until counted again, "
                   "the largest record per topic, and events/s beside the bare client.")
@click.option("--citizens", type=int, default=0, metavar="N",
              help="With --soak: the ID cards go to N citizens again and again (state bounded by N while the "
                   "history grows: where a restore from a checkpoint beats folding every delta).")
@click.option("--peer", is_flag=True,
              help="Instead: our worker on single-event and on batched messages beside a Quix Streams app doing "
                   "the same dedupe and per-ward/day counting on single JSON messages, same events, one run; rates "
                   "and ratios (--events defaults to 20,000 here). Needs the bench extra: pip install -e '.[bench]'.")
@click.option("--latency", is_flag=True,
              help="Instead: live single-event traffic at --rate events/s for --seconds into a worker; p50/p99 "
                   "from publish to the dashboard's live counters.")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="With --latency: events per second.")
@click.option("--seconds", type=float, default=30.0, show_default=True, help="With --latency: how long.")
@click.pass_context
def bench(ctx: click.Context, events: int, batch_size: int, workers: int, flag_churn: bool, onboarding: int,
          soak: bool, citizens: int, peer: bool, latency: bool, rate: float, seconds: float) -> None:
    """Throughput benchmark: worker vs bare aiokafka consumer vs importer, on the embedded broker.

    Prints, from one run on the same backlog: the import rate, a bare aiokafka
    consumer decoding every event, one worker end to end (timed by its own
    clock) with its CPU per event and peak RSS, and the ratio worker / bare
    client. Rates move with a shared machine's load; read the ratio.
    """
    if peer:
        from bench.peer import main as peer_main

        source = ctx.get_parameter_source("events")
        peer_main(events=20_000 if source == click.core.ParameterSource.DEFAULT else events, batch_size=batch_size)
        return
    if latency:
        from bench.peer import latency as latency_main

        latency_main(rate=rate, seconds=seconds)
        return
    if soak:
        from bench.soak import main as soak_main

        soak_main(events=events, citizens=citizens)
        return
    if onboarding:
        from bench.onboarding import main as onboarding_main

        onboarding_main(cards=onboarding)
        return
    from bench.throughput import main as bench_main

    bench_main(events=events, batch_size=batch_size, workers=workers, flag_churn=flag_churn)


@main.command()
@broker_option
@click.option("--rate", type=float, default=300.0, show_default=True, help="Simulated events per second.")
@click.option("--web-port", type=int, envvar="LIENTHONG_WEB_PORT", default=6066, show_default=True)
@click.option("--gateway-port", type=int, envvar="LIENTHONG_GATEWAY_PORT", default=6070, show_default=True)
@click.pass_context
def demo(ctx: click.Context, rate: float, web_port: int, gateway_port: int) -> None:
    """Everything at once: embedded broker, worker, gateway and simulated city traffic."""
    from lienthong.demo import run_demo

    run_demo(_settings(ctx).with_(web_port=web_port, gateway_port=gateway_port), rate=rate)


main.add_command(deadletter)

if __name__ == "__main__":
    main()
