"""The dashboard in a real Chromium: same figures as the API, updated live over SSE."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_web_api import import_id_cards, send_garbage
from tests.support import hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ID_CARDS_TILE = '[data-kpi="id_cards_issued"]'
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 1000}}
#: Screenshots of the layout tests land here too (for a human to look at), when set.
SCREENSHOT_DIR = os.environ.get("LIENTHONG_SCREENSHOT_DIR")

#: Every element of a card (tile or panel) that sticks out of the card's content box
#: (inside its padding), measured in the page: [card heading, element, its box, the
#: content box]. What scrolls inside a card (the flag list, the scorecard table) is
#: measured by its scrolling box, which must fit.
OVERFLOWS_JS = """() => {
  const out = [];
  for (const card of document.querySelectorAll('.tile, .panel')) {
    const box = card.getBoundingClientRect(), style = getComputedStyle(card);
    const c = { left: box.left + parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft),
                right: box.right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRight) };
    for (const el of card.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (!r.width || el.closest('.flags li, .scroll > *')) continue;
      if (r.left < c.left - 0.5 || r.right > c.right + 0.5) {
        out.push([card.querySelector('h2').textContent.trim().slice(0, 40), el.tagName + '.' + el.className +
                  ' ' + el.textContent.trim().slice(0, 30), [r.left, r.right], [c.left, c.right]]);
      }
    }
  }
  return out;
}"""


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Any:
    return browser.new_page(viewport=SIZES["desktop"])


def tile_number(page: object, selector: str) -> int | None:
    text = page.inner_text(selector)  # type: ignore[attr-defined]
    digits = re.sub(r"\D", "", text)
    return int(digits) if digits else None


def test_id_card_tile_shows_the_api_figure_and_follows_a_second_import(broker, workers, tmp_path, page):
    worker = workers()
    import_id_cards(broker, tmp_path, 70, "first.csv")
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 70, 60, what="the first import")
    page.goto(f"{worker.url}/")  # type: ignore[attr-defined]
    wait_for(lambda: tile_number(page, ID_CARDS_TILE) == worker.kpis()["id_cards_issued"], 30,
             what="the tile to show /api/kpis")
    page.evaluate("window.__sameDocument = true")  # type: ignore[attr-defined]

    import_id_cards(broker, tmp_path, 130, "second.csv")  # 70 repeat (same rows) + 60 new
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 130, 60, what="the second import")
    wait_for(lambda: tile_number(page, ID_CARDS_TILE) == 130, 30, what="the tile to update live")
    assert page.evaluate("window.__sameDocument") is True  # type: ignore[attr-defined]


def failed_requests(page: Any) -> list[str]:
    """Every response of the page with an error status, collected as they come."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return failed


def screenshot(page: Any, path: Path) -> tuple[int, int]:
    """A full-page screenshot saved to ``path``; its pixel size (read from the PNG header)."""
    page.screenshot(path=str(path), full_page=True)
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        (Path(SCREENSHOT_DIR) / path.name).write_bytes(path.read_bytes())
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.fixture
def city(broker: str, workers: Callable[..., Any], tmp_path: Path) -> Any:
    """A worker that has counted a small simulated city (every tile has a figure)."""
    worker = workers()
    result = run_cli("simulate", "--events", "1500", "--seed", "11", "--rate", "5000", "--no-progress",
                     env=hub_env(broker, tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    wait_for(lambda: worker.kpis()["residence_registrations"]["PERMANENT"] > 0
             and worker.kpis()["procedures_on_time_rate"] is not None, 90, what="a city with every flow")
    return worker


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_no_element_is_wider_than_its_card_and_nothing_is_clipped(city, browser, tmp_path, size):
    page = browser.new_page(viewport=SIZES[size])
    failed = failed_requests(page)
    page.goto(f"{city.url}/")
    wait_for(lambda: page.inner_text('[data-kpi="residence_online_rate.PERMANENT"]').endswith("%"), 30,
             what="the residence online-rate tile to fill")
    wait_for(lambda: "msg" in page.inner_text("#health-lag"), 30, what="the hub-health tile to fill")
    page.evaluate("drawChart()")
    assert page.evaluate(OVERFLOWS_JS) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["width"]
    canvas_width = page.evaluate("document.querySelector('#chart').clientWidth")
    assert 0 < int(page.get_attribute("#chart", "data-labels-right") or 0) <= canvas_width
    width, height = screenshot(page, tmp_path / f"dashboard-{size}.png")
    assert width == SIZES[size]["width"] and height >= SIZES[size]["height"]
    assert failed == []


def test_the_favicon_is_served_and_the_page_loads_without_a_failed_request(broker, workers, page):
    worker = workers()
    failed = failed_requests(page)
    page.goto(f"{worker.url}/")
    page.wait_for_load_state("networkidle")
    icon = page.request.get(f"{worker.url}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert failed == []


def test_a_rate_with_nothing_to_divide_by_shows_a_dash(broker, workers, tmp_path, page):
    worker = workers()
    import_id_cards(broker, tmp_path, 20)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 20, 60, what="20 ID cards")
    assert worker.kpis()["procedures_on_time_rate"] is None
    page.goto(f"{worker.url}/")
    wait_for(lambda: tile_number(page, ID_CARDS_TILE) == 20, 30, what="the tiles to fill")
    assert page.inner_text('[data-kpi="procedures_on_time_rate"]') == "—"
    assert page.inner_text('[data-kpi="residence_online_rate.PERMANENT"]') == "—"


def test_hub_health_tile_shows_lag_dead_letters_silence_and_worker_state(broker, workers, tmp_path, page):
    worker = workers()
    import_id_cards(broker, tmp_path, 30)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 30, 60, what="30 ID cards")
    page.goto(f"{worker.url}/")
    wait_for(lambda: page.inner_text("#health-worker") == "ok", 30, what="the worker state")
    assert page.get_attribute("#health-state", "data-state") == "ok"
    assert "healthy" in page.inner_text("#health-state")
    assert re.fullmatch(r"\d+ msg", page.inner_text("#health-lag"))
    assert page.inner_text("#health-dead").startswith("0")
    assert page.inner_text("#health-silent") == "0"

    send_garbage(broker, 10)  # 10 refused of 40: far above the warning line
    wait_for(lambda: worker.kpis()["events_dead_lettered"] == 10, 60, what="10 dead letters")
    wait_for(lambda: page.get_attribute("#health-state", "data-state") == "warn", 30,
             what="the tile to ask for attention")
    assert page.inner_text("#health-dead").startswith("25")
    assert "warn" in (page.get_attribute("#health-dead", "class") or "")


def test_a_flag_reads_in_vietnamese_first_in_city_time_with_its_ward_name(broker, workers, browser):
    from schemas.wards import city_wards
    from tests.integration.test_flags import publish
    from tests.integration.test_web_api import failed_syncs

    worker = workers()
    ward = sorted(city_wards())[0]
    publish(broker, *failed_syncs(1, [ward]))  # opened 2024-06-01T00:00Z = 07:00 in the city
    wait_for(lambda: worker.get("/api/flags")["total"] == 1, 60, what="one flag")
    page = browser.new_context(timezone_id="UTC", viewport=SIZES["desktop"]).new_page()  # a viewer abroad
    page.goto(f"{worker.url}/")
    item = page.locator("#flags li").first
    wait_for(lambda: item.get_attribute("data-flag-id"), 30, what="the flag on the page")
    head = item.locator(".head").inner_text()
    assert head.index("Đồng bộ BHYT lỗi") < head.index("insurance sync failed")
    where = item.locator(".where").inner_text()
    assert city_wards()[ward] in where and ward in where
    assert "07:00" in where and "01/06/2024" in where
    assert item.locator(".vi").inner_text().startswith("BHXH")
    assert "Đồng bộ BHYT lỗi" in page.inner_text("#flag-types")


@pytest.mark.parametrize("width", [1440, 390])
def test_scorecard_table_shows_each_agency_month_as_the_api_does(broker, workers, tmp_path, page, width):
    worker = workers()
    import_id_cards(broker, tmp_path, 40, "cards.csv")
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 40, 60, what="the import")
    [police] = [r for r in worker.get("/api/agencies")["scorecard"] if r["agency"] == "POLICE"]
    page.set_viewport_size({"width": width, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{worker.url}/")  # type: ignore[attr-defined]
    row = page.locator("#scorecard tr", has_text=police["month"])  # type: ignore[attr-defined]
    wait_for(lambda: row.count() == 1 and tile_number(page, "#scorecard tr td:nth-child(3)") == police["events"],
             30, what="the scorecard row of the police")
    assert police["events"] == 40 and police["delay_p50_s"] is not None
    panel = page.locator(".scorecard-section .panel").bounding_box()  # type: ignore[attr-defined]
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= width  # the table scrolls inside its card
    shot = tmp_path / f"scorecard-{width}.png"
    page.locator(".scorecard-section").screenshot(path=str(shot))  # type: ignore[attr-defined]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 2000
