"""``lienthong simulate``: the generated city published live, days of city time in minutes.

Records come from :mod:`connectors.simulation.city` and go out through the same
path as any agency's (``connectors.sdk``: prepare → pseudonymise → publish), one
:class:`~connectors.sdk.Publisher` per agency so each agency heartbeats on its own
and the hub can tell a silent agency from a quiet one. Pacing is by wall clock
(``rate`` records per second) while event time runs ``days`` of city time over
the run, so a dashboard fills with weeks of history while one watches.

A run stops after ``events`` records or ``duration`` seconds, whichever comes
first, or at Ctrl-C/SIGTERM; every stop flushes, so what the progress bar
counted is what the broker acknowledged.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Self

import click
from tqdm import tqdm

from connectors.csv_import import parse_time
from connectors.sdk import Publisher
from connectors.simulation.city import CityShape, RawEvent, generate_city, stream_city
from connectors.simulation.csv_export import write_csv
from hubbase.logs import get_logger
from hubbase.settings import Settings
from hubbase.topic_admin import ensure_topics
from schemas.pseudonym import Pseudonymiser
from schemas.vocabulary import AGENCIES

__all__ = [
    "CityShape",
    "events_per_day",
    "export_csv",
    "generate_city",
    "run_simulation",
    "stream_city",
    "write_csv",
]

log = get_logger(__name__)

#: Without a fixed size, ``days`` of city time pass every this many wall seconds.
OPEN_ENDED_PERIOD_S = 300.0
HEARTBEAT_INTERVAL_S = 5.0


def events_per_day(rate: float, days: float, events: int | None, duration: float | None) -> float:
    """The city's density so that the run covers ``days`` of city time.

    With ``--events`` the run is exactly :func:`generate_city` of that size (so
    the truth of a run can be recomputed from its arguments); with only
    ``--duration`` it is ``rate × duration`` records; open-ended runs cover
    ``days`` every :data:`OPEN_ENDED_PERIOD_S` seconds and keep going.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    if events is not None:
        total = float(events)
    elif duration is not None:
        total = rate * duration
    else:
        total = rate * OPEN_ENDED_PERIOD_S
    return max(total, 1.0) / days


class _StopSignal:
    """SIGINT/SIGTERM set a flag the publishing loop checks, so the stop is always clean."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _paced(
    records: Iterator[RawEvent], rate: float, duration: float | None, stop: _StopSignal
) -> Iterator[RawEvent]:
    """Release records at ``rate`` per wall-clock second until the end, the duration or a signal."""
    started = time.monotonic()
    for sent, record in enumerate(records):
        if stop.requested:
            return
        due = started + sent / rate if rate > 0 else started
        while True:
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                return
            if stop.requested:
                return
            if now >= due:
                break
            time.sleep(min(due - now, 0.2))
        yield record


def export_csv(
    directory: Path, *, seed: int, events: int, days: float, start: str
) -> dict[str, Path]:
    """Write the city ``simulate --events`` would publish as per-agency CSV exports."""
    return write_csv(generate_city(seed, parse_time(start, "start"), days, events), directory)


def run_simulation(
    settings: Settings,
    *,
    seed: int,
    rate: float,
    duration: float | None,
    events: int | None,
    days: float,
    start: str,
    batch_size: int,
    progress: bool = True,
) -> None:
    """Publish the seed's city traffic to ``settings.broker`` until told to stop."""
    start_ms = parse_time(start, "start")
    density = events_per_day(rate, days, events, duration)
    records: Iterator[RawEvent] = stream_city(seed, start_ms, density)
    if events is not None:
        records = itertools.islice(records, events)
    ensure_topics(settings.broker, settings.partitions)
    pseudonymiser = Pseudonymiser(settings.resolved_pseudonym_key())
    publishers = {
        agency: Publisher(
            settings.broker,
            connector=f"simulator-{agency.lower()}",
            batch_size=batch_size,
            heartbeat_source=agency,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            pseudonymiser=pseudonymiser,
        )
        for agency in AGENCIES
    }
    published = 0
    log.info(
        "simulation_started",
        seed=seed,
        rate=rate,
        days=days,
        events=events,
        duration=duration,
        events_per_day=round(density, 1),
    )
    try:
        with (
            _StopSignal() as stop,
            tqdm(total=events, unit="ev", desc=f"simulate seed={seed}", disable=not progress, mininterval=0.5) as bar,
        ):
            for record in _paced(records, rate, duration, stop):
                publishers[record["source"]].publish(record)
                published += 1
                bar.update(1)
    finally:
        errors: list[BaseException] = []
        for publisher in publishers.values():
            try:
                publisher.close()
            except Exception as exc:  # noqa: BLE001 - close every publisher even if one failed
                errors.append(exc)
        log.info("simulation_stopped", published=published)
        click.echo(f"published {published} events")
        if errors:
            raise errors[0]
