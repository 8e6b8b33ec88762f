"""Speech recognition (the `asr` extra): faster-whisper on a tiny random Whisper the tests convert themselves with
CTranslate2's converter (tests/app/tiny_whisper.py), offline. Plumbing, not quality: cues with times inside the
media land in the catalogue and its full-text index; a transcript the media brings wins; a bad model directory
is refused naming the setting; with no setting speech is skipped.

Its own server (module scope) with VATT_ASR_MODEL set, on its own catalogue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_server import API_KEY, MAX_DURATION, UPLOAD_LIMIT, LiveServer, live_server, wait_job
from tiny_whisper import build_tiny_whisper

from app.services.asr import AsrError, WhisperTranscriber, load_transcriber
from app.settings import Settings
from model.media import probe


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("asr") / "tiny-whisper-ct2")


@pytest.fixture(scope="module")
def aserver(trained_model_dir: Path, corpus: dict[str, Path], whisper_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path_factory.mktemp("adata"), api_key=API_KEY,
                        max_upload_bytes=UPLOAD_LIMIT, max_duration_s=MAX_DURATION, torch_threads=1,
                        batch_wait_ms=2.0, asr_model=whisper_dir, asr_language="en")
    with live_server(settings, corpus) as srv:
        yield srv


@pytest.fixture(scope="module")
def aclient(aserver: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=aserver.url, timeout=60) as c:
        yield c


def _ingest(server: LiveServer, client: httpx.Client, path: Path, **files) -> str:
    with open(path, "rb") as fh:
        r = client.post("/items", headers=server.headers(), files={"file": (path.name, fh), **files})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], timeout=120)
    assert job["status"] == "done", job
    return job["item_id"]


def _cues(client: httpx.Client, item_id: str) -> list[dict]:
    r = client.get(f"/items/{item_id}/transcript", params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()["cues"]


def test_the_recogniser_gives_cues_inside_the_media(whisper_dir: Path, corpus: dict[str, Path]) -> None:
    audio = corpus["red.wav"]
    duration = probe(audio).duration
    cues = WhisperTranscriber(whisper_dir, language="en").transcribe(audio, duration)
    assert cues, "the tiny Whisper said nothing at all"
    assert all(0.0 <= c.start < c.end <= duration and c.text.strip() for c in cues), cues
    assert [c.start for c in cues] == sorted(c.start for c in cues)
    assert load_transcriber(None) is None  # no setting: no recogniser, speech skipped


def test_a_directory_that_is_no_model_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="VATT_ASR_MODEL"):
        WhisperTranscriber(tmp_path)


def test_speech_becomes_the_transcript_of_media_without_one(aserver: LiveServer, aclient: httpx.Client) -> None:
    for name in ("red.wav", "green"):  # an audio file, and a video with a sound track
        item_id = _ingest(aserver, aclient, aserver.corpus[name])
        duration = aclient.get(f"/items/{item_id}").json()["duration"]
        cues = _cues(aclient, item_id)
        assert cues and all(0 <= c["start"] < c["end"] <= duration + 1e-6 and c["text"] for c in cues), cues
        # the words reach the full-text index: a keyword search for one finds the item at that cue's time
        word = cues[0]["text"].split()[0]
        hits = aclient.post("/search", json={"text": word, "mode": "keyword", "k": 50}).json()["results"]
        mine = [h for h in hits if h["item"]["id"] == item_id]
        assert mine, (word, hits)
        assert any(m["text"] and f"<mark>{word}</mark>" in m["text"] for m in mine[0]["moments"]), mine


def test_a_transcript_the_media_brings_wins_over_speech(aserver: LiveServer, aclient: httpx.Client) -> None:
    said = [{"start": 0.5, "end": 2.0, "text": "uploaded words win"}]
    item_id = _ingest(aserver, aclient, aserver.corpus["blue"],
                      transcript=("blue.json", json.dumps(said).encode(), "application/json"))
    assert [(c["start"], c["end"], c["text"]) for c in _cues(aclient, item_id)] == [(0.5, 2.0, "uploaded words win")]
