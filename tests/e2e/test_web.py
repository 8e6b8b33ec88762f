"""The web page in headless Chromium against a real server: search, play a moment, ingest with
progress, classify, and an API error shown to the user.

Driven by Playwright on Debian's Chromium with real input events (`browser.py`); every case saves a
screenshot to tests/artifacts/ (pass or fail). Needs Debian's `chromium` package: without it the
fixtures fail with a message saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import Chromium, Page
from e2e_corpus import make_clip

FRAME = 1 / 25  # the clips' frame duration: the seek must land within one frame


@pytest.fixture
def page(browser: Chromium, served, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh tab on the page, ready; screenshot on the way out; no uncaught JS errors allowed."""
    tab = browser.new_page()
    try:
        tab.goto(f"{served.url}/")
        tab.wait_for("document.querySelector('#health').dataset.state === 'ready'", timeout=30,
                     what="the page to report the service ready")
        yield tab
    finally:
        shot = tab.screenshot(artifacts / f"web-{request.node.name}.png")
        print(f"screenshot: {shot}")
        tab.close()
    assert not tab.errors, f"JavaScript errors on the page: {tab.errors}\nconsole: {tab.console}"


def _q(page: Page, js: str):
    return page.evaluate(js)


def test_text_search_finds_clip_and_moment_seeks_player(page: Page, served) -> None:
    page.type_text("#query", "a blue screen")
    page.press_enter()
    page.wait_for("document.querySelectorAll('.result-card').length > 0", what="result cards")

    cards = _q(page, "[...document.querySelectorAll('.result-card')].map(c => c.dataset.itemId)")
    assert cards[0] == served.item_ids["blue"], f"best result {cards[0]}, expected the blue clip; all: {cards}"
    assert set(cards) <= set(served.item_ids.values())
    card = f".result-card[data-item-id='{served.item_ids['blue']}']"
    title = _q(page, f"document.querySelector(\"{card} .card-title\").textContent")
    assert "blue clip" in title
    thumb_ok = page.wait_for(f"(() => {{ const i = document.querySelector(\"{card} .thumb\");"
                             " return i.complete && i.naturalWidth > 0; })()", what="the thumbnail to load")
    assert thumb_ok

    moments = _q(page, f"[...document.querySelectorAll(\"{card} .moment\")].map(m => Number(m.dataset.start))")
    assert moments, "the best result shows no moments"
    # Prefer a moment that does not start at 0, so the seek is visible.
    index = next((i for i, s in enumerate(moments) if s > 0), 0)
    start = moments[index]
    page.evaluate("window.__seeks = []; document.querySelector('#player')"
                  ".addEventListener('seeked', e => window.__seeks.push(e.target.currentTime)); true")
    page.click(f"{card} .moment:nth-of-type({index + 1})")
    page.wait_for("window.__seeks.length > 0", timeout=30, what="the player's seeked event")
    seeked_at = _q(page, "window.__seeks[window.__seeks.length - 1]")
    assert abs(seeked_at - start) <= FRAME + 1e-3, f"player seeked to {seeked_at}, moment starts at {start}"
    player = _q(page, "(() => { const p = document.querySelector('#player');"
                      " return {item: p.dataset.itemId, src: p.currentSrc, error: p.error && p.error.code,"
                      " duration: p.duration}; })()")
    assert player["item"] == served.item_ids["blue"]
    assert player["src"].endswith(f"/media/{served.item_ids['blue']}"), player
    assert player["error"] is None
    assert player["duration"] == pytest.approx(6.4, abs=0.1)
    assert _q(page, f"document.querySelector(\"{card} .moment:nth-of-type({index + 1})\")"
                    ".getAttribute('aria-pressed')") == "true"


def test_ingest_upload_shows_progress_until_done(page: Page, served) -> None:
    clip = make_clip(served.workdir / "yellow.mp4", (230, 220, 40), duration=9.6)
    page.set_files("#ingest-file", [clip])
    page.type_text("#ingest-metadata", json.dumps({"title": "yellow clip"}))
    page.click("#ingest-btn")
    status = page.wait_for("(() => { const s = document.querySelector('#ingest-status').dataset.status;"
                           " return s === 'done' || s === 'failed' ? s : ''; })()", timeout=180,
                           what="ingestion to finish")
    text = _q(page, "document.querySelector('#ingest-status').textContent")
    error = _q(page, "document.querySelector('#error').hidden ? '' : document.querySelector('#error-text').textContent")
    assert status == "done", f"ingest status {status!r}: {text} {error}"
    bar = _q(page, "(() => { const b = document.querySelector('#ingest-progress'); return [b.value, b.max]; })()")
    assert bar[0] == bar[1] == 1
    item_id = _q(page, "document.querySelector('#ingest-status').dataset.itemId")
    r = httpx.get(f"{served.url}/items/{item_id}", timeout=10)
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["metadata"] == {"title": "yellow clip"}
    assert item["source"] == "yellow.mp4"
    assert item["n_segments"] == 3
    page.wait_for(f"!!document.querySelector(\"#library li[data-item-id='{item_id}']\")",
                  what="the new item in the library list")


def test_classify_a_result_item(page: Page, served) -> None:
    page.type_text("#query", "a red screen")
    page.press_enter()
    red = served.item_ids["red"]
    page.wait_for(f"document.querySelector('.result-card')?.dataset.itemId === '{red}'", what="the red clip first")
    page.click(f".result-card[data-item-id='{red}'] .classify-item-btn")
    assert _q(page, "document.querySelector('#classify-item').value") == red
    page.type_text("#classify-labels", "red screen, green screen, blue screen")
    page.evaluate("document.querySelector('#classify-template').value = ''; true")
    page.type_text("#classify-template", "a {}")
    page.click("#classify-btn")
    best = page.wait_for("document.querySelector('#classify-results').dataset.best", what="classification results")
    assert best == "red screen"
    rows = _q(page, "[...document.querySelectorAll('#classify-results > table tbody tr')]"
                    ".map(r => [r.dataset.label, Number(r.dataset.probability)])")
    assert [r[0] for r in rows][0] == "red screen"
    assert sum(p for _, p in rows) == pytest.approx(1.0, abs=1e-4)
    assert _q(page, "document.querySelectorAll('#classify-results details table').length") == 2  # 2 segments


def test_api_error_detail_is_shown(page: Page, served, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_bytes(b"this is not a video, only text pretending\n" * 20)
    with open(bogus, "rb") as fh:  # what the server says about it
        expected = httpx.post(f"{served.url}/search", files={"file": (bogus.name, fh, "video/mp4")}, timeout=30)
    assert expected.status_code in (415, 422), expected.text
    detail = expected.json()["detail"]
    page.set_files("#search-file", [bogus])
    page.click("#search-file-btn")
    page.wait_for("!document.querySelector('#error').hidden", what="the error box")
    shown = _q(page, "document.querySelector('#error-text').textContent")
    assert shown == detail
    assert _q(page, "document.querySelector('#error').dataset.status") == str(expected.status_code)


def test_search_by_file_finds_the_same_clip(page: Page, served) -> None:
    green = served.item_ids["green"]
    page.set_files("#search-file", [served.clips["green"]])
    page.click("#search-file-btn")
    page.wait_for("document.querySelector('#search-status').dataset.state === 'done'", what="file search results")
    cards = _q(page, "[...document.querySelectorAll('.result-card')].map(c => [c.dataset.itemId, Number(c.dataset.score)])")
    assert cards and cards[0][0] == green, f"expected the green clip first (same bytes), got {cards}"
    assert cards[0][1] == pytest.approx(1.0, abs=1e-3)
    assert "green.mp4" in _q(page, "document.querySelector('#search-status').textContent")


def test_every_control_is_labelled(page: Page) -> None:
    unlabelled = _q(page, """[...document.querySelectorAll('input, textarea, select, button, video')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
        .map(e => e.id || e.outerHTML.slice(0, 80))""")
    assert unlabelled == [], f"controls without a label: {unlabelled}"
