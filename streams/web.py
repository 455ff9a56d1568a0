"""HTTP API of a worker (aiohttp): KPIs, counters, flags, agencies, health.

Served by our own aiohttp app rather than Faust's web views, because it needs
streaming responses (server-sent events) and static assets.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from streams.clock import iso_utc
from streams.state import split_counter_key

if TYPE_CHECKING:
    from streams.app import Hub

HUB_KEY: web.AppKey["Hub"] = web.AppKey("hub")


def _hub(request: web.Request) -> "Hub":
    return request.app[HUB_KEY]


def _as_of() -> str:
    return iso_utc(int(time.time() * 1000))


def _filters(request: web.Request, *names: str) -> dict[str, str | None]:
    return {name: (request.query.get(name) or None) for name in names}


async def healthz(request: web.Request) -> web.Response:
    hub = _hub(request)
    return web.json_response(
        {
            "status": "ok",
            "worker": hub.worker_name,
            "partitions_owned": sorted(hub.processor.states),
            "partitions_known": hub.view.partitions_known,
            "messages": hub.stats["messages"],
        }
    )


async def kpis(request: web.Request) -> web.Response:
    f = _filters(request, "ward", "day")
    return web.json_response({"as_of": _as_of(), "filters": f, "kpis": _hub(request).view.kpis(**f)})


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
    f = _filters(request, "status", "type", "agency", "ward")
    rows = [
        flag
        for flag in _hub(request).view.flags
        if (f["status"] is None or flag["status"] == f["status"].upper())
        and (f["type"] is None or flag["type"] == f["type"].upper())
        and (f["agency"] is None or flag["agency"] == f["agency"].upper())
        and (f["ward"] is None or flag["ward_code"] == f["ward"])
    ]
    rows.sort(key=lambda fl: (fl["opened_at"], fl["flag_id"]))
    return web.json_response({"as_of": _as_of(), "flags": rows})


async def agencies(request: web.Request) -> web.Response:
    seen = _hub(request).view.agencies
    now = int(time.time() * 1000)
    rows = [
        {"agency": a, "events": info["events"], "last_seen": iso_utc(info["last_seen_ms"]),
         "silent_for_s": round((now - info["last_seen_ms"]) / 1000, 1)}
        for a, info in sorted(seen.items())
    ]
    return web.json_response({"as_of": _as_of(), "agencies": rows})


def build_web_app(hub: "Hub") -> web.Application:
    app = web.Application()
    app[HUB_KEY] = hub
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/kpis", kpis)
    app.router.add_get("/api/counters", counters)
    app.router.add_get("/api/flags", flags)
    app.router.add_get("/api/agencies", agencies)
    return app


async def start_web(hub: "Hub", host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_web_app(hub), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
