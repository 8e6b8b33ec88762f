"""The web page's transcripts (issue 27) in headless Chromium against a real server: the mode switch, the
matched lines under each moment with the query's words in <mark>, and the transcript panel beside the player
(it lists the cues, a click seeks to one, the cue under the playhead is marked, "no transcript" otherwise).

An item is uploaded with a WebVTT `transcript` part through the real multipart route; every wait on the
server is over HTTP. A screenshot of results and panel goes to docs/screenshots/ (committed) and
tests/artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import Page
from e2e_corpus import make_clip
from page_helpers import in_view as _in_view, q as _q, wait_done as _wait_done

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
FRAME = 1 / 25  # the clips' frame duration: a seek lands within one frame

# the tiny model knows colours, not lectures: these words reach the item only through its transcript
VTT = """WEBVTT

00:00:00.000 --> 00:00:02.000
Welcome to the lecture.

00:00:02.000 --> 00:00:04.500
Today: gradient descent, and why &lt;b&gt;step sizes&lt;/b&gt; matter.

00:00:04.500 --> 00:00:07.000
The gradient points uphill, so we walk the other way.

00:00:07.000 --> 00:00:09.600
Thanks for watching.
"""
CUES = [(0.0, 2.0, "Welcome to the lecture."),
        (2.0, 4.5, "Today: gradient descent, and why <b>step sizes</b> matter."),
        (4.5, 7.0, "The gradient points uphill, so we walk the other way."),
        (7.0, 9.6, "Thanks for watching.")]


@pytest.fixture(scope="module")
def lecture(served) -> Iterator[str]:
    """A 9.6 s clip uploaded with its WebVTT transcript as the multipart `transcript` part; its item id."""
    clip = make_clip(served.workdir / "lecture.mp4", (200, 200, 200), duration=9.6)
    with open(clip, "rb") as fh:
        r = httpx.post(f"{served.url}/items", timeout=60,
                       files={"file": (clip.name, fh, "video/mp4"), "transcript": ("lecture.vtt", VTT.encode(), "text/vtt")},
                       data={"metadata": json.dumps({"title": "lecture"})})
    assert r.status_code == 202, r.text
    item_id = _wait_done(served, r.json()["job_id"])["item_id"]
    stored = httpx.get(f"{served.url}/items/{item_id}/transcript", params={"format": "json"}, timeout=10).json()
    assert [(c["start"], c["end"], c["text"]) for c in stored["cues"]] == CUES
    try:
        yield item_id
    finally:
        httpx.delete(f"{served.url}/items/{item_id}", timeout=10)


def _search(page: Page, text: str, mode: str) -> None:
    """Pick `mode` on the switch, type `text`, press Enter, wait for the answer to be drawn."""
    page.click(f"#mode-{mode}")
    page.evaluate("document.querySelector('#query').value = ''; document.querySelector('#search-status')"
                  ".dataset.state = ''; true")
    page.type_text("#query", text)
    page.press_enter()
    state = page.wait_for("(() => { const s = document.querySelector('#search-status').dataset.state;"
                          " return ['done', 'error'].includes(s) ? s : ''; })()", what=f"the {mode} search for {text!r}")
    assert state == "done", _q(page, "document.querySelector('#search-error').innerText")


def _api(served, **body) -> dict:
    r = httpx.post(f"{served.url}/search", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _small_png(shot: Path, out: Path) -> None:
    """The page's top (results and player) as a 64-colour PNG: it is committed, so kept small."""
    from PIL import Image

    with Image.open(shot) as img:
        img.convert("RGB").crop((0, 0, img.width, min(img.height, 1000))).quantize(64).save(out, optimize=True)


def _lines(page: Page, card: str) -> list[dict]:
    """Each matched line under the card's moments: its moment, its text, its <mark>ed words, any other tags."""
    return _q(page, f"""[...document.querySelectorAll("{card} .moment-line")].map(p => ({{
        start: Number(p.dataset.start), text: p.textContent,
        marks: [...p.querySelectorAll('mark')].map(m => m.textContent),
        tags: [...p.querySelectorAll('*')].map(e => e.tagName.toLowerCase()).filter(t => t !== 'mark')}}))""")


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_matched_lines_show_the_querys_words_marked(page: Page, served, lecture: str, mode: str) -> None:
    _search(page, "gradient", mode)
    api = _api(served, text="gradient", mode=mode, k=10)
    assert api["results"][0]["item"]["id"] == lecture  # only the lecture says it
    cards = _q(page, "[...document.querySelectorAll('.result-card')].map(c => c.dataset.itemId)")
    assert cards == [h["item"]["id"] for h in api["results"]]
    card = f".result-card[data-item-id='{lecture}']"
    lines = _lines(page, card)
    said = [m for m in api["results"][0]["moments"] if m["text"]]
    assert said, api["results"][0]
    assert [ln["start"] for ln in lines if ln["text"]] == [m["start"] for m in said]
    marked = [ln for ln in lines if ln["marks"]]
    assert marked and all(set(w.lower() for w in ln["marks"]) == {"gradient"} for ln in marked), lines
    # the cue's "<b>" is text the speaker said, not markup: shown as written, no element made of it
    assert all(ln["tags"] == [] for ln in lines), lines
    texts = " ".join(ln["text"] for ln in lines)
    assert "<b>step sizes</b>" in texts and "uphill" in texts, texts  # both lines that say it
    assert _in_view(page, f"{card} .moment-line mark")
    if mode == "keyword":  # words only: no score strip (it would be the vectors' cosines)
        assert _q(page, f"document.querySelectorAll(\"{card} .strip\").length") == 0
        _search(page, "zyzzyva", "keyword")
        assert _q(page, "document.querySelectorAll('.result-card').length") == 0
        assert "No results" in _q(page, "document.querySelector('#search-status').innerText")
    else:
        # the blue clip has no transcript: hybrid still finds it by its vectors, with no line to show
        _search(page, "a blue screen", "hybrid")
        blue = served.item_ids["blue"]
        assert _q(page, "document.querySelector('.result-card').dataset.itemId") == blue
        assert all(not ln["text"] for ln in _lines(page, f".result-card[data-item-id='{blue}']"))
    # back to vector: no lines at all, the mode field not sent
    _search(page, "a blue screen", "vector")
    assert _q(page, "document.querySelectorAll('.moment-line').length") == 0
    assert _q(page, "document.querySelector('.result-card').dataset.itemId") == served.item_ids["blue"]


def test_transcript_panel_lists_seeks_and_follows_playback(page: Page, served, lecture: str,
                                                             artifacts: Path) -> None:
    _search(page, "gradient descent", "hybrid")
    card = f".result-card[data-item-id='{lecture}']"
    page.click(f"{card} .moment:nth-of-type(1)")  # opens the item in the player
    page.wait_for("document.querySelector('#transcript').dataset.state === 'ready'", what="the transcript panel")
    assert _q(page, "document.querySelector('#transcript').dataset.itemId") == lecture
    rows = _q(page, "[...document.querySelectorAll('#transcript-lines .cue')].map(b => [Number(b.dataset.start),"
                    " Number(b.dataset.end), b.querySelector('.cue-text').textContent])")
    assert [tuple(r) for r in rows] == CUES
    assert _q(page, "document.querySelectorAll('#transcript-lines b').length") == 0
    assert _in_view(page, "#transcript-lines .cue")

    # a click on the third line seeks the player to its start, and that line becomes the current one
    page.evaluate("const p = document.querySelector('#player'); p.muted = true; window.__seeks = [];"
                  " p.addEventListener('seeked', e => window.__seeks.push(e.target.currentTime)); true")
    page.click("#transcript-lines li:nth-child(3) .cue")
    page.wait_for(f"window.__seeks.some(t => Math.abs(t - {CUES[2][0]}) <= {FRAME + 1e-3})",
                  what="the player to seek to the third cue")
    page.evaluate("document.querySelector('#player').pause(); true")
    assert abs(_q(page, "document.querySelector('#player').currentTime") - CUES[2][0]) < 0.5
    page.wait_for("document.querySelector('#transcript-lines li:nth-child(3) .cue').getAttribute('aria-current')"
                  " === 'true'", what="the clicked cue to be current")
    assert _q(page, "document.querySelectorAll('#transcript-lines [aria-current]').length") == 1

    # the playhead moved elsewhere (as playing does): the current line follows it
    page.evaluate("document.querySelector('#player').currentTime = 8.0; true")
    page.wait_for("document.querySelector('#transcript-lines li:nth-child(4) .cue').getAttribute('aria-current')"
                  " === 'true'", what="the fourth cue to be current after the playhead moved to 8 s")
    assert _q(page, "[...document.querySelectorAll('#transcript-lines [aria-current]')].map(b => b.dataset.start)") \
        == ["7"]
    # and playing from the first cue carries the mark over to the second as the video runs
    page.click("#transcript-lines li:nth-child(1) .cue")
    page.wait_for("document.querySelector('#transcript-lines li:nth-child(2) .cue').getAttribute('aria-current')"
                  " === 'true'", timeout=30, what="the second cue to become current while playing")
    assert _q(page, "document.querySelector('#player').currentTime") >= CUES[1][0]

    # the screenshot: keyword-marked lines under the moments, the panel beside the player
    page.evaluate("document.querySelector('#player').pause(); document.querySelector('#player').currentTime = 3.0;"
                  " window.scrollTo(0, 0); true")
    page.wait_for("document.querySelector('#transcript-lines li:nth-child(2) .cue').getAttribute('aria-current')"
                  " === 'true'", what="the second cue current for the screenshot")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _small_png(page.screenshot(artifacts / "web-transcripts.png"), SCREENSHOTS / "web-transcripts.png")


def test_an_item_without_a_transcript_says_so(page: Page, served, lecture: str) -> None:
    _search(page, "a green screen", "vector")
    green = served.item_ids["green"]
    card = f".result-card[data-item-id='{green}']"
    page.click(f"{card} .thumb-btn")
    page.wait_for("document.querySelector('#transcript').dataset.state === 'empty'", what="the empty transcript")
    assert _q(page, "document.querySelector('#transcript').dataset.itemId") == green
    assert httpx.get(f"{served.url}/items/{green}/transcript", params={"format": "json"}).json()["cues"] == []
    assert _q(page, "document.querySelector('#transcript-status').innerText") == "no transcript"
    assert _in_view(page, "#transcript-status")
    assert _q(page, "document.querySelectorAll('#transcript-lines .cue').length") == 0
    # a PUT transcript shows once the item is opened again (another item first, then back)
    put = httpx.put(f"{served.url}/items/{green}/transcript", content=b'[{"start": 0, "end": 3.2, "text": "a green screen speaks"}]',
                    headers={"Content-Type": "application/json"}, timeout=10)
    assert put.status_code == 200, put.text
    try:
        page.click(f".result-card[data-item-id='{served.item_ids['red']}'] .thumb-btn")
        page.wait_for(f"document.querySelector('#transcript').dataset.itemId === '{served.item_ids['red']}'"
                      " && document.querySelector('#transcript').dataset.state === 'empty'", what="the red clip's panel")
        page.click(f"{card} .thumb-btn")
        page.wait_for("document.querySelector('#transcript').dataset.state === 'ready'", what="the PUT transcript")
        assert _q(page, "document.querySelector('#transcript-lines .cue-text').textContent") == "a green screen speaks"
    finally:
        httpx.put(f"{served.url}/items/{green}/transcript", content=b"[]", headers={"Content-Type": "application/json"},
                  timeout=10)
