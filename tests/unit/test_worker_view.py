"""The HTTP API reads a worker through ``WorkerView`` only: served here over a stand-in, no Faust, no broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from streams.api.live import Listeners
from streams.api.metrics import HubMetrics
from streams.api.web import build_web_app
from streams.health import Problem
from streams.view import CityView


class _Consumer:
    def assignment(self) -> set[Any]:
        return set()


def stand_in(problems: list[Problem] | None = None) -> Any:
    async def found() -> list[Problem]:
        return problems or []

    return SimpleNamespace(
        worker_name="w-1", view=CityView(), partitions_owned={2, 0}, verifies_signatures=True,
        silence_periods=[], consumer=_Consumer(), listeners=Listeners(), problems=found,
        stats={"messages": 7, "groups": 3, "first_message_at": None, "last_message_at": None,
               "first_message_cpu_s": None, "last_message_cpu_s": None},
    )


async def _get(worker: Any, path: str) -> tuple[int, Any]:
    async with TestClient(TestServer(build_web_app(worker, HubMetrics(worker)))) as client:
        response = await client.get(path)
        return response.status, await response.json()


def test_healthz_answers_from_the_worker_view():
    status, body = asyncio.run(_get(stand_in(), "/healthz"))
    assert status == 200
    assert (body["worker"], body["partitions_owned"], body["messages"], body["groups"]) == ("w-1", [0, 2], 7, 3)
    assert body["signature_verification"] == "on" and body["stream_listeners"] == 0


def test_healthz_reports_the_problems_the_worker_view_gives():
    status, body = asyncio.run(_get(stand_in([Problem("stalled", "5 messages waiting")]), "/healthz"))
    assert status == 503 and body["problems"] == ["5 messages waiting"]


def test_a_listener_gets_what_the_worker_announces_until_it_leaves():
    listeners = Listeners()
    queue = listeners.subscribe()
    listeners.notify({"kind": "delta"})
    listeners.unsubscribe(queue)
    listeners.notify({"kind": "delta"})
    assert queue.qsize() == 1 and len(listeners) == 0


def test_the_dashboard_and_its_assets_are_served_from_streams_static():
    async def fetch() -> list[tuple[int, str]]:
        async with TestClient(TestServer(build_web_app(stand_in(), HubMetrics(stand_in())))) as client:
            found = []
            for path in ("/", "/favicon.ico", "/static/dashboard.js"):
                response = await client.get(path)
                found.append((response.status, response.content_type))
            return found

    assert [status for status, _ in asyncio.run(fetch())] == [200, 200, 200]
