"""HTTP API of a worker (aiohttp): dashboard, JSON API, live stream, metrics.

Served by our own aiohttp app rather than Faust's web views, because it needs
streaming responses (server-sent events) and static assets. Every endpoint is
described in :mod:`streams.api.openapi`; query filters are checked against the same
constants, and a bad one is answered ``400 {"error", "field", "reason"}`` rather
than an empty result that would look like "no data".
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web

from schemas.vocabulary import AGENCIES, LISTED_FLAG_STATUSES
from schemas.wards import city_wards, ward_codes
from streams.api.flag_pages import PageError, PageRequest, api_flag, page_of
from streams.api.metrics import CONTENT_TYPE, HubMetrics
from streams.api.openapi import DAY_PATTERN, MONTH_PATTERN, openapi_document
from streams.api.worker_view import WorkerView
from streams.clock import iso_utc
from streams.flags import FLAG_TYPES
from streams.flags.rollups import parse_rollup_subject
from streams.state import split_counter_key

HUB_KEY: web.AppKey[WorkerView] = web.AppKey("hub")
METRICS_KEY: web.AppKey[HubMetrics] = web.AppKey("metrics")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Seconds between checks for changed KPIs and pending counts on a live stream.
STREAM_TICK_S = 1.0
#: Longest silence on a live stream before a keep-alive comment (proxies drop idle streams).
STREAM_KEEPALIVE_S = 15.0
#: A KPIs event is sent at least this often even when nothing changed.
STREAM_KPIS_EVERY_S = 15.0
#: Metrics shown per ward in /api/wards (the busiest-ward table of the dashboard).
WARD_METRICS = ("events_total", "id_cards_issued", "checkins_by_id_card", "procedures_submitted")


class FilterError(Exception):
    """A query parameter the API refuses; turned into a 400 naming the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _hub(request: web.Request) -> WorkerView:
    return request.app[HUB_KEY]


def _metrics(request: web.Request) -> HubMetrics:
    return request.app[METRICS_KEY]


def _as_of() -> str:
    return iso_utc(int(time.time() * 1000))


# -- filters --------------------------------------------------------------------
def _day(value: str) -> str:
    if not re.fullmatch(DAY_PATTERN, value):
        raise FilterError("day", "must be a local date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise FilterError("day", f"{value!r} is not a calendar date") from None
    return value


def _ward(value: str) -> str:
    if value not in ward_codes():
        raise FilterError("ward", "not an official ward code of Ho Chi Minh City (province 79)")
    return value


def _one_of(field: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        upper = value.upper()
        if upper not in choices:
            raise FilterError(field, f"must be one of {', '.join(choices)}")
        return upper

    return check


def _limit(value: str) -> str:
    if not value.isdigit() or not 1 <= int(value) <= len(ward_codes()):
        raise FilterError("limit", f"must be an integer from 1 to {len(ward_codes())}")
    return value


def _month(value: str) -> str:
    if not re.fullmatch(MONTH_PATTERN, value) or not 1 <= int(value[5:]) <= 12:
        raise FilterError("month", "must be a local month YYYY-MM")
    return value


def _wards(value: str) -> str:
    if value not in ("all", "none"):
        raise FilterError("wards", "must be all or none")
    return value


def _metric(value: str) -> str:
    if not value:
        raise FilterError("metric", "must not be empty")
    return value


CHECKS: dict[str, Callable[[str], str]] = {
    "day": _day,
    "ward": _ward,
    "metric": _metric,
    "status": _one_of("status", LISTED_FLAG_STATUSES),
    "type": _one_of("type", FLAG_TYPES),
    "agency": _one_of("agency", AGENCIES),
    "limit": _limit,
    "month": _month,
    "wards": _wards,
}


def _filters(request: web.Request, *names: str) -> dict[str, str | None]:
    """The named query filters, checked and normalised; an absent one means "any"."""
    out: dict[str, str | None] = {}
    for name in names:
        raw = request.query.get(name)
        out[name] = None if raw is None else CHECKS[name](raw)
    return out


@web.middleware
async def refuse_bad_filters(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (FilterError, PageError) as exc:
        return web.json_response(
            {"error": "invalid query parameter", "field": exc.field, "reason": exc.reason}, status=400
        )


# -- JSON API -------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    """200 ``ok`` while the worker does its job; 503 ``unhealthy`` with the reasons when not."""
    hub = _hub(request)
    problems = await hub.problems()
    return web.json_response(
        {
            "status": "unhealthy" if problems else "ok",
            "problems": [problem.reason for problem in problems],
            "worker": hub.worker_name,
            "partitions_owned": sorted(hub.partitions_owned),
            "partitions_known": hub.view.partitions_known,
            "messages": hub.stats["messages"],
            # state changes written for them: messages / groups is what the group commit saves
            "groups": hub.stats["groups"],
            # ISO-8601 UTC like every time in the API (the worker keeps epoch seconds for its own use)
            "first_message_at": _iso_or_none(hub.stats["first_message_at"]),
            "last_message_at": _iso_or_none(hub.stats["last_message_at"]),
            "first_message_cpu_s": hub.stats["first_message_cpu_s"],
            "last_message_cpu_s": hub.stats["last_message_cpu_s"],
            "consumer_lag": _metrics(request).total_lag(),
            "stream_listeners": len(hub.listeners),
            # an operator must see at a glance when senders are not being proven
            "signature_verification": "on" if hub.verifies_signatures else "off",
        },
        status=503 if problems else 200,
    )


def _iso_or_none(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else iso_utc(round(epoch_s * 1000))


def _kpis_body(hub: WorkerView, ward: str | None = None, day: str | None = None) -> dict[str, Any]:
    return {"as_of": _as_of(), "filters": {"ward": ward, "day": day}, "kpis": hub.view.kpis(ward, day)}


async def kpis(request: web.Request) -> web.Response:
    f = _filters(request, "ward", "day")
    return web.json_response(_kpis_body(_hub(request), f["ward"], f["day"]))


async def counters(request: web.Request) -> web.Response:
    f = _filters(request, "metric", "ward", "day")
    rows: list[dict[str, Any]] = []
    for key, value in sorted(_hub(request).view.counters.items()):
        metric, ward, day = split_counter_key(key)
        if (f["metric"] is None or metric == f["metric"]) and (f["ward"] is None or ward == f["ward"]) and (
            f["day"] is None or day == f["day"]
        ):
            rows.append({"metric": metric, "ward": ward, "day": day, "value": value})
    return web.json_response({"as_of": _as_of(), "counters": rows})


async def flags(request: web.Request) -> web.Response:
    """Flags matching the filters, one page at a time (see :mod:`streams.api.flag_pages`).

    Streamed from the stores of the partitions this worker owns, with every roll-up;
    the flags of other workers' partitions are listed by them (``partitions_elsewhere``).
    """
    f = _filters(request, "status", "type", "agency", "ward")
    page = PageRequest.parse(request.query)
    view = _hub(request).view
    rows = (
        flag
        for flag in view.iter_flags()
        if (f["status"] is None or flag["status"] == f["status"])
        and (f["type"] is None or flag["type"] == f["type"])
        and (f["agency"] is None or flag["agency"] == f["agency"])
        and (f["ward"] is None or flag["ward_code"] == f["ward"])
    )
    return web.json_response({"as_of": _as_of(), **page_of(rows, page),
                              "partitions_elsewhere": view.partitions_elsewhere})


async def agencies(request: web.Request) -> web.Response:
    hub = _hub(request)
    seen = hub.view.agencies
    # Events come from the counters (summed over every partition); the liveness
    # record only knows the partition that heard from the agency last.
    events: Counter[str] = Counter()
    for key, value in hub.view.counters.items():
        if key.startswith("agency:"):
            events[split_counter_key(key)[0][len("agency:"):]] += value
    now = int(time.time() * 1000)
    rows = [
        {"agency": a, "events": events[a], "last_seen": iso_utc(info["last_seen_ms"]),
         "silent_for_s": round((now - info["last_seen_ms"]) / 1000, 1)}
        for a, info in sorted(seen.items())
    ]
    return web.json_response({"as_of": _as_of(), "agencies": rows, **_scorecard(request, hub, now)})


def _scorecard(request: web.Request, hub: WorkerView, now_ms: int) -> dict[str, Any]:
    """The scorecard rows for /api/agencies: per agency × month, and (``ward`` or
    ``wards=all``) per agency × ward × month; see ``streams/scorecard.py``."""
    f = _filters(request, "month", "ward", "agency", "wards")
    totals, by_ward = hub.view.scorecard(list(hub.silence_periods), now_ms)

    def keep(row: dict[str, Any]) -> bool:
        return (f["month"] is None or row["month"] == f["month"]) and (
            f["agency"] is None or row["agency"] == f["agency"])

    out: dict[str, Any] = {"scorecard": [r for r in totals if keep(r)]}
    if f["ward"] is not None or f["wards"] == "all":
        out["scorecard_wards"] = [r for r in by_ward if keep(r) and f["ward"] in (None, r["ward"])]
    return out


async def flag_subjects(request: web.Request) -> web.Response:
    """The per-citizen flags behind a SYNC_MISSING roll-up (docs/flags.md, "Roll-ups")."""
    hub = _hub(request)
    fid = request.query.get("flag_id")
    if not fid:
        raise FilterError("flag_id", "required: the flag_id of a SYNC_MISSING roll-up")
    flag = hub.view.flag(fid)
    group = parse_rollup_subject(flag["subject"]) if flag is not None and flag["type"] == "SYNC_MISSING" else None
    if flag is None or group is None:
        reason = "no such flag" if flag is None else "not a roll-up: no flags stand behind it"
        return web.json_response({"error": f"flag_id: {reason}", "field": "flag_id", "reason": reason}, status=404)
    subjects, count, elsewhere = hub.view.rolled_subjects(group)
    names = city_wards()
    # count: every citizen behind the roll-up, in every partition (the flag's partials);
    # subjects: those of the partitions this worker owns; the rest are listed by their owners
    return web.json_response({"as_of": _as_of(), "flag": api_flag(flag, names), "count": count,
                              "subjects": [api_flag(s, names) for s in subjects],
                              "partitions_elsewhere": elsewhere})


async def wards(request: web.Request) -> web.Response:
    """Busiest wards first, with their official names, for the dashboard's ward table."""
    f = _filters(request, "day", "limit")
    hub = _hub(request)
    names = city_wards()
    totals: dict[str, Counter[str]] = {}
    for key, value in hub.view.counters.items():
        metric, ward, day = split_counter_key(key)
        if ward and metric in WARD_METRICS and (f["day"] is None or day == f["day"]):
            totals.setdefault(ward, Counter())[metric] += value
    open_flags: Counter[str] = Counter()
    for (_, ward_code), n in hub.view.open_flags_by(day=f["day"]).items():
        if ward_code:
            open_flags[ward_code] += n
    rows: list[dict[str, Any]] = [
        {"ward": ward, "name": names.get(ward, ward), "events": t["events_total"],
         "id_cards_issued": t["id_cards_issued"], "checkins_by_id_card": t["checkins_by_id_card"],
         "procedures_submitted": t["procedures_submitted"], "flags_open": open_flags[ward]}
        for ward in set(totals) | set(open_flags)
        for t in [totals.get(ward, Counter())]
    ]
    rows.sort(key=lambda r: (-int(r["events"]), -int(r["flags_open"]), str(r["ward"])))
    limit = int(f["limit"] or 20)
    return web.json_response({"as_of": _as_of(), "wards_total": len(rows), "wards": rows[:limit]})


async def throughput(request: web.Request) -> web.Response:
    minutes = [dict(row, minute=iso_utc(int(row["minute"]) * 1000))
               for row in _metrics(request).throughput.rows()]
    return web.json_response({"as_of": _as_of(), "agencies": list(AGENCIES), "minutes": minutes})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    body = await _metrics(request).exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask for /favicon.ico whatever the page says; answer rather than log 404s."""
    return web.FileResponse(STATIC_DIR / "favicon.ico",
                            headers={"Content-Type": "image/x-icon", "Cache-Control": "max-age=86400"})


# -- server-sent events ------------------------------------------------------------
def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    """Live changes for dashboards: KPIs, accepted counts by agency, and flags.

    Fed by the hub's listener queue (one per client, bounded by the hub), so a
    slow client never slows the stream processing; counts are coalesced per tick
    so a busy city costs one small event a second, not one per message.
    """
    hub = _hub(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = hub.listeners.subscribe()
    loop = asyncio.get_running_loop()
    try:
        await response.write(b"retry: 3000\n\n")
        last_kpis: dict[str, Any] | None = None
        last_kpis_at = last_write = loop.time()
        pending: Counter[str] = Counter()
        next_tick = loop.time()
        while request.transport is not None and not request.transport.is_closing():
            try:
                message = await asyncio.wait_for(queue.get(), max(0.0, next_tick - loop.time()))
            except TimeoutError:
                message = None
            out = bytearray()
            while message is not None:
                pending.update(message.get("accepted") or {})
                for flag in message.get("flags") or []:
                    out += _sse("flag", api_flag(flag))
                message = queue.get_nowait() if not queue.empty() else None
            now = loop.time()
            if now >= next_tick:
                next_tick = now + STREAM_TICK_S
                if pending:
                    out += _sse("counts", {"at": _as_of(), "by_agency": dict(pending)})
                    pending.clear()
                body = _kpis_body(hub)
                if body["kpis"] != last_kpis or now - last_kpis_at >= STREAM_KPIS_EVERY_S:
                    out += _sse("kpis", body)
                    last_kpis, last_kpis_at = body["kpis"], now
                if not out and now - last_write >= STREAM_KEEPALIVE_S:
                    out += b": keep-alive\n\n"
            if out:
                await response.write(bytes(out))
                last_write = now
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass  # the client went away: fall through to cleanup
    finally:
        hub.listeners.unsubscribe(queue)
    return response


# -- wiring ---------------------------------------------------------------------
def build_web_app(hub: WorkerView, worker_metrics: HubMetrics) -> web.Application:
    app = web.Application(middlewares=[refuse_bad_filters])
    app[HUB_KEY] = hub
    app[METRICS_KEY] = worker_metrics
    app.router.add_get("/", dashboard)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/kpis", kpis)
    app.router.add_get("/api/counters", counters)
    app.router.add_get("/api/flags", flags)
    app.router.add_get("/api/flags/subjects", flag_subjects)
    app.router.add_get("/api/agencies", agencies)
    app.router.add_get("/api/wards", wards)
    app.router.add_get("/api/throughput", throughput)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    return app


async def start_web(hub: WorkerView, worker_metrics: HubMetrics, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_web_app(hub, worker_metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
