"""The dashboard in a real Chromium: same figures as the API, updated live over SSE."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.test_web_api import import_id_cards
from tests.support import wait_for

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ID_CARDS_TILE = '[data-kpi="id_cards_issued"]'


@pytest.fixture
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 1000})
        finally:
            browser.close()


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
