"""The web page in headless Chromium against a real server: search, play a moment, ingest with
progress, classify, and an API error shown to the user.

Driven by Playwright on Debian's Chromium with real input events (`browser.py`); every case saves a
screenshot to tests/artifacts/ (pass or fail). Needs Debian's `chromium` package: without it the
fixtures fail with a message saying so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from browser import Page
from e2e_corpus import CLIP_COLOURS, make_clip
from page_helpers import in_view as _in_view, q as _q, text as _text, wait_done as _wait_done

FRAME = 1 / 25  # the clips' frame duration: the seek must land within one frame


def _search_text(page: Page, text: str) -> None:
    page.evaluate("document.querySelector('#query').value = ''; document.querySelector('#search-status')"
                  ".dataset.state = ''; true")
    page.type_text("#query", text)
    page.press_enter()
    page.wait_for("['done', 'error'].includes(document.querySelector('#search-status').dataset.state)",
                  what=f"the search for {text!r}")


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
    error = _q(page, "document.querySelector('#ingest-error').hidden ? '' : document.querySelector('#ingest-error').textContent")
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
    # no labels yet: the classify panel says so, where the user is looking
    assert _in_view(page, "#classify-error") and "two labels" in _text(page, "#classify-error")
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
    page.wait_for("!document.querySelector('#search-error').hidden", what="the search panel's error box")
    shown = _q(page, "document.querySelector('#search-error .panel-error-text').textContent")
    assert shown == detail
    assert _q(page, "document.querySelector('#search-error').dataset.status") == str(expected.status_code)


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


# --- issue 28: the first hour of a new user -------------------------------------------------------------

def _cards(page: Page) -> list[str]:
    return _q(page, "[...document.querySelectorAll('.result-card')].map(c => c.dataset.itemId)")


def _api_search(served, **body) -> dict:
    r = httpx.post(f"{served.url}/search", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_duplicate_upload_shows_the_servers_note(page: Page, served) -> None:
    page.set_files("#ingest-file", [served.clips["red"]])
    page.type_text("#ingest-metadata", json.dumps({"title": "a new title"}))
    page.click("#ingest-btn")
    page.wait_for("['done', 'failed'].includes(document.querySelector('#ingest-status').dataset.status)",
                  timeout=120, what="the upload to finish")
    job_id = _q(page, "document.querySelector('#ingest-status').dataset.jobId")
    job = httpx.get(f"{served.url}/jobs/{job_id}", timeout=10).json()
    assert job["note"], job  # the server says the metadata was not applied
    assert _in_view(page, "#ingest-note") and job["note"] in _text(page, "#ingest-note")
    assert f"already indexed as {served.item_ids['red']}" in _text(page, "#ingest-status")
    assert "Indexed red.mp4" not in _text(page, "#ingest-status")


def test_errors_show_in_the_panel_that_caused_them_and_stale_results_go(page: Page, served) -> None:
    _search_text(page, "a blue screen")
    assert _cards(page)
    page.evaluate("document.querySelector('#query').value = ''; true")
    page.click("#search-btn")
    page.wait_for("document.querySelectorAll('.result-card').length === 0", what="the old results to go")
    assert _in_view(page, "#search-error") and "Type something" in _text(page, "#search-error")
    page.click("#ingest-btn")  # no file chosen
    assert _in_view(page, "#ingest-error") and "Choose a video or audio file" in _text(page, "#ingest-error")
    # a classification, then a failing one: the error in the classify panel, the old table gone
    page.type_text("#classify-labels", "red screen, blue screen")
    page.type_text("#classify-item", served.item_ids["blue"])
    page.click("#classify-btn")
    page.wait_for("document.querySelector('#classify-results').dataset.best", what="a classification")
    page.evaluate("document.querySelector('#classify-item').value = ''; true")
    page.type_text("#classify-item", "0" * 32)
    page.click("#classify-btn")
    page.wait_for("!document.querySelector('#classify-error').hidden", what="the classify panel's error")
    detail = httpx.post(f"{served.url}/classify", json={"item_id": "0" * 32, "labels": ["a", "b"]}).json()["detail"]
    assert _in_view(page, "#classify-error") and detail in _text(page, "#classify-error")
    assert _text(page, "#classify-results").strip() == ""
    assert _q(page, "document.querySelectorAll('#classify-results table').length") == 0


def test_cards_show_metadata_and_the_filter_narrows_the_search(page: Page, served,
                                                                           artifacts: Path) -> None:
    _search_text(page, "a blue screen")
    card = f".result-card[data-item-id='{served.item_ids['blue']}']"
    assert "a blue screen" not in _text(page, card)  # metadata collapsed
    page.click(f"{card} .card-metadata summary")
    assert "caption" in _text(page, f"{card} .card-metadata") and "a blue screen" in _text(page, f"{card} .card-metadata")
    # where: title = "red clip" leaves only the red clip, whatever the text asks for
    page.click("#filters-summary")
    page.click("#where-add")
    page.type_text(".where-row .where-key", "title")
    page.type_text(".where-row .where-value", "red clip")
    _search_text(page, "a blue screen")
    assert _cards(page) == [served.item_ids["red"]]
    assert _text(page, "#filters-summary") == "Filters (1 condition)"
    assert _in_view(page, ".where-row .where-op")
    page.screenshot(artifacts / "web-filter-panel.png")
    page.click(".where-row .where-remove")


def test_library_shows_the_count_pages_and_thumbnails(page: Page, served) -> None:
    total = httpx.get(f"{served.url}/items", params={"limit": 1}, timeout=10).json()["total"]
    assert total >= 3
    page.wait_for("document.querySelector('#library-count').dataset.total", what="the library count")
    assert _text(page, "#library-count") == f"1–{min(total, 20)} of {total} items"
    page.wait_for("[...document.querySelectorAll('#library img.lib-thumb')].length > 0 && [...document"
                  ".querySelectorAll('#library img.lib-thumb')].every(i => i.complete && i.naturalWidth > 0)",
                  what="every library thumbnail to load")
    page.evaluate("document.querySelector('#library').dataset.pageSize = '2'; true")
    page.click("#library-refresh")
    page.wait_for(f"document.querySelector('#library-count').innerText === '1–2 of {total} items'", what="page 1")
    assert _q(page, "document.querySelectorAll('#library li').length") == 2
    assert not _q(page, "document.querySelector('#library-next').disabled")
    page.click("#library-next")
    page.wait_for(f"document.querySelector('#library-count').innerText === '3–{min(total, 4)} of {total} items'",
                  what="page 2")
    assert not _q(page, "document.querySelector('#library-prev').disabled")


def test_classify_on_a_result_runs_the_classification(page: Page, served) -> None:
    page.type_text("#classify-labels", "red screen, green screen, blue screen")
    _search_text(page, "a green screen")
    green = served.item_ids["green"]
    page.click(f".result-card[data-item-id='{green}'] .classify-item-btn")
    best = page.wait_for("document.querySelector('#classify-results').dataset.best", what="the classification")
    assert best == "green screen"
    assert _in_view(page, "#classify-results .best") and f"item {green}" in _text(page, "#classify-results .best")


def test_moments_below_the_floor_are_not_listed(page: Page, served) -> None:
    _search_text(page, "a red screen")
    api = _api_search(served, text="a red screen", k=10, include=["timeline"])
    assert api["moment_floor"] == 0.0
    for hit in api["results"]:
        card = f".result-card[data-item-id='{hit['item']['id']}']"
        shown = _q(page, f"[...document.querySelectorAll(\"{card} .moment\")].map(m => [Number(m.dataset.start),"
                         " Number(m.dataset.score)])")
        below = [c for c in hit["timeline"] if c["score"] < 0]
        above = sorted((c for c in hit["timeline"] if c["score"] >= 0), key=lambda c: -c["score"])[:3]
        assert [s for s, _ in shown] == [c["start"] for c in above], (shown, hit["timeline"])
        assert all(score >= 0 for _, score in shown)
        if not above:
            assert "no moment scores above 0" in _text(page, card)
        assert not {c["start"] for c in below} & {s for s, _ in shown}


def test_weak_results_are_marked(page: Page, served) -> None:
    _search_text(page, "qwzx blorp ???")
    weak = _q(page, "[...document.querySelectorAll('.result-card')].map(c => c.dataset.weak)")
    assert weak and set(weak) == {"true"}, weak
    assert _in_view(page, ".result-card .weak-badge") and _text(page, ".result-card .weak-badge") == "weak match"
    assert "weak" in _text(page, "#search-status")
    _search_text(page, "a blue screen")
    assert _q(page, "document.querySelector('.result-card').dataset.weak") == "false"
    assert _q(page, "document.querySelector('.result-card:first-child .weak-badge') === null")


def test_score_strip_shows_each_segment_and_plays_from_a_cell(page: Page, served, artifacts: Path) -> None:
    # red for the first window, blue for the next two: the strip must be cold, then hot, for "a blue screen"
    clip = make_clip(served.workdir / "red-then-blue.mp4", CLIP_COLOURS["red"], duration=9.6,
                     then=CLIP_COLOURS["blue"], switch_at=3.2)
    with open(clip, "rb") as fh:
        r = httpx.post(f"{served.url}/items", files={"file": (clip.name, fh, "video/mp4")},
                       data={"metadata": json.dumps({"title": "red, then blue"})}, timeout=60)
    mixed = r.json()["item_id"]
    try:
        _wait_done(served, r.json()["job_id"])
        _search_text(page, "a blue screen")
        api = _api_search(served, text="a blue screen", k=10, include=["timeline"])
        for hit in api["results"]:
            card = f".result-card[data-item-id='{hit['item']['id']}']"
            cells = _q(page, f"[...document.querySelectorAll(\"{card} .strip .cell\")].map(c => [Number(c.dataset.start),"
                             " Number(c.dataset.score), c.dataset.best])")
            assert [c[0] for c in cells] == [c["start"] for c in hit["timeline"]]
            assert len(cells) == hit["item"]["n_segments"]
            assert [round(c[1], 5) for c in cells] == [round(c["score"], 5) for c in hit["timeline"]]
            assert {c[0] for c in cells if c[2] == "true"} == {m["start"] for m in hit["moments"]}
        card = f".result-card[data-item-id='{mixed}']"
        cells = _q(page, f"[...document.querySelectorAll(\"{card} .strip .cell\")].map(c => [Number(c.dataset.start),"
                         " Number(c.dataset.score), c.dataset.best, getComputedStyle(c).backgroundColor])")
        assert [c[0] for c in cells] == [0.0, 3.2, 6.4], cells
        assert cells[0][1] < min(cells[1][1], cells[2][1]), cells  # the red window matches "blue" least
        assert cells[0][2] == "false" and cells[2][2] == "true", cells  # best moments marked in the blue part
        assert cells[0][3] != cells[2][3], "the cold and the hot cell have the same colour"
        assert _in_view(page, f"{card} .strip")
        page.click("#filters-summary")  # the filter panel open beside the strips, for the screenshot
        page.click("#where-add")
        page.evaluate("document.querySelector('#query').focus(); true")
        page.screenshot(artifacts / "web-score-strips.png")
        page.evaluate("window.__seeks = []; document.querySelector('#player')"
                      ".addEventListener('seeked', e => window.__seeks.push(e.target.currentTime)); true")
        page.click(f"{card} .strip .cell:nth-child(3)")
        page.wait_for("window.__seeks.length > 0", what="the player's seek")
        assert abs(_q(page, "window.__seeks.at(-1)") - 6.4) <= FRAME + 1e-3
        assert _q(page, "document.querySelector('#player').dataset.itemId") == mixed
        assert _q(page, f"document.querySelector(\"{card} .strip .cell:nth-child(3)\").getAttribute('aria-pressed')") == "true"
    finally:
        httpx.delete(f"{served.url}/items/{mixed}", timeout=10)


def test_an_item_without_a_playable_copy_says_so(page: Page, served) -> None:
    clip = make_clip(served.workdir / "purple.mp4", (150, 40, 160))
    with open(clip, "rb") as fh:
        r = httpx.post(f"{served.url}/items", files={"file": (clip.name, fh, "video/mp4")}, timeout=60)
    item_id = r.json()["item_id"]
    try:
        item_id = _wait_done(served, r.json()["job_id"])["item_id"]
        for gone in [*(served.data_dir / "media").glob(f"{item_id}.*"), *(served.data_dir / "thumbs").glob(f"{item_id}.*")]:
            gone.unlink()  # the copy is gone, as for an item imported from a path outside the roots
        item = httpx.get(f"{served.url}/items/{item_id}", timeout=10).json()
        assert "media_url" in item, (item, httpx.get(f"{served.url}/jobs/{r.json()['job_id']}", timeout=10).json())
        assert item["media_url"] is None and item["thumbnail_url"] is None
        page.evaluate(f"window.vatt.doSearch({{item_id: '{served.item_ids['red']}'}}, 'items like red'); true")
        card = f".result-card[data-item-id='{item_id}']"
        page.wait_for(f"!!document.querySelector(\"{card}\")", what="the copy-less item among the results")
        assert "no playable copy" in _text(page, f"{card} .card-meta")
        assert "no playable copy" in _text(page, f"{card} .thumb-btn")
        page.click(f"{card} .thumb-btn")
        assert _in_view(page, "#player-error") and "no playable copy" in _text(page, "#player-error")
        assert not _q(page, "document.querySelector('#player').getAttribute('src')")
        page.click("#library-refresh")
        page.wait_for(f"!!document.querySelector(\"#library li[data-item-id='{item_id}'] .play-btn\")", what="library")
        assert _text(page, f"#library li[data-item-id='{item_id}'] .play-btn") == "no playable copy"
    finally:
        httpx.delete(f"{served.url}/items/{item_id}", timeout=10)


def test_the_collection_picker_scopes_library_search_and_player(page: Page, served) -> None:
    """Picking a collection lists, searches and plays only its items (routes under /collections/NAME/)."""
    r = httpx.post(f"{served.url}/collections", json={"name": "lectures"}, timeout=30)
    assert r.status_code == 201, r.text
    try:
        clip = make_clip(served.workdir / "lectures-grey.mp4", (128, 128, 128))
        with open(clip, "rb") as fh:
            r = httpx.post(f"{served.url}/collections/lectures/items", files={"file": (clip.name, fh, "video/mp4")},
                           data={"metadata": json.dumps({"title": "grey lecture"})}, timeout=60)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 120
        while (job := httpx.get(f"{served.url}/collections/lectures/jobs/{r.json()['job_id']}", timeout=10).json()
               )["status"] != "done":
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.2)
        lecture = job["item_id"]
        page.evaluate("window.vatt.loadCollections().then(() => true)")
        page.wait_for("[...document.querySelectorAll('#collection option')].some(o => o.value === 'lectures')",
                      what="the collections in the picker")
        assert _q(page, "[...document.querySelectorAll('#collection option')].map(o => o.textContent)") == [
            f"default ({httpx.get(f'{served.url}/items', timeout=10).json()['total']} items)", "lectures (1 item)"]
        page.evaluate("const s = document.querySelector('#collection'); s.value = 'lectures';"
                      " s.dispatchEvent(new Event('change')); true")
        page.wait_for("document.querySelector('#library-count').innerText === '1–1 of 1 item'", what="its library")
        assert _q(page, "[...document.querySelectorAll('#library li')].map(li => li.dataset.itemId)") == [lecture]
        page.evaluate("window.vatt.doSearch({text: 'a red clip'}, 'a red clip'); true")
        page.wait_for("document.querySelectorAll('.result-card').length > 0", what="the collection's results")
        assert set(_cards(page)) == {lecture}  # not the default collection's red clip
        page.click(f"#library li[data-item-id='{lecture}'] .play-btn")
        page.wait_for("document.querySelector('#player').readyState >= 1", what="the lecture to load in the player")
        assert f"/collections/lectures/media/{lecture}" in _q(page, "document.querySelector('#player').src")
        page.evaluate("const s = document.querySelector('#collection'); s.value = 'default';"
                      " s.dispatchEvent(new Event('change')); true")
        page.wait_for("document.querySelector('#library-count').dataset.total !== '1'", what="the default library")
        assert lecture not in _q(page, "[...document.querySelectorAll('#library li')].map(li => li.dataset.itemId)")
        assert _q(page, "document.querySelectorAll('.result-card').length") == 0  # stale results went
    finally:
        httpx.delete(f"{served.url}/collections/lectures", timeout=30)


def test_the_score_threshold_drops_weaker_results(page: Page, served) -> None:
    ranked = _api_search(served, text="a blue screen", k=10)["results"]
    assert len(ranked) >= 2 and ranked[0]["score"] > ranked[1]["score"]
    cut = (ranked[0]["score"] + ranked[1]["score"]) / 2
    page.click("#filters-summary")
    page.type_text("#score-threshold", f"{cut:.6f}")  # step="any": no rounding makes the form invalid
    _search_text(page, "a blue screen")
    assert _text(page, "#search-status") and _cards(page) == [ranked[0]["item"]["id"]]
    page.evaluate("document.querySelector('#score-threshold').value = ''; true")
    _search_text(page, "a blue screen")
    assert _cards(page) == [r["item"]["id"] for r in ranked]
