"""The typed Python client (issue 28, item 20): `Client` and `AsyncClient` against a real uvicorn server.

Every method is called and its result checked as the schema model it promises; errors arrive as one
family with the server's status and message (the service's shape and, under /v1, OpenAI's); a 429
from the admission limit (a real upload holding the only encode slot) is waited out per Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_server import API_KEY, LiveServer, run_server
from media_factory import make_video

from app.client import APIError, AsyncClient, Client, ClientError, UnreachableError
from app.schemas import (ClassifyResponse, Deleted, EmbedFileResponse, EmbedTextResponse, Example, Health, ItemOut,
                         ItemsPage, ItemWithVectors, JobAccepted, JobOut, JobsPage, OpenAIEmbeddingResponse,
                         OpenAIModelList, Readiness, SearchBatchResponse, SearchRequest, SearchResponse, TranscriptOut)
from app.settings import Settings

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na purple dog\n\n00:00:02.000 --> 00:00:04.000\nbarks twice\n"


@pytest.fixture(scope="module")
def vatt(server: LiveServer) -> Client:
    with Client(server.url, api_key=API_KEY) as client:
        yield client


def test_health_models_and_embeddings(vatt: Client, ingested: dict[str, str]) -> None:
    assert vatt.healthz() == Health(status="ok")
    ready = vatt.readyz()
    assert isinstance(ready, Readiness) and ready.ready and ready.items >= 3
    assert "vatt_http_requests" in vatt.metrics()
    models = vatt.models()
    assert isinstance(models, OpenAIModelList) and models.data and models.data[0].object == "model"
    texts = vatt.embed_texts(["a red screen with a low hum", "a blue screen"])
    assert isinstance(texts, EmbedTextResponse) and len(texts.embeddings) == 2 and len(texts.embeddings[0].vt) == texts.dim
    openai = vatt.embeddings(["a red screen with a low hum"], models.data[0].id)
    assert isinstance(openai, OpenAIEmbeddingResponse) and openai.usage.prompt_tokens > 0
    assert np.allclose(openai.data[0].embedding, texts.embeddings[0].vt, atol=1e-5)
    packed = vatt.embeddings("a red screen with a low hum", models.data[0].id, encoding_format="base64")
    assert np.allclose(np.frombuffer(base64.b64decode(packed.data[0].embedding), "<f4"), texts.embeddings[0].vt,
                       atol=1e-5)


def test_embed_search_recommend_batch_classify(vatt: Client, server: LiveServer, ingested: dict[str, str]) -> None:
    red, blue = ingested["red"], ingested["blue"]
    emb = vatt.embed_file(server.corpus["red"], spaces=["vt"])
    assert isinstance(emb, EmbedFileResponse) and emb.kind == "video" and emb.segments
    assert emb.segments[0].vt is not None and emb.segments[0].va is None and list(emb.mean) == ["vt"]

    by_text = vatt.search("a red screen with a low hum", k=2)
    assert isinstance(by_text, SearchResponse) and by_text.results[0].item.id == red
    assert isinstance(by_text.results[0].item, ItemOut) and by_text.results[0].confidence is not None
    by_item = vatt.search(item_id=red, k=3, exclude=["moments", "metadata"])
    assert red not in [r.item.id for r in by_item.results] and by_item.query_kind == "video"
    assert all(r.moments == [] and r.item.metadata == {} for r in by_item.results)  # left out by the server
    by_vector = vatt.search(vector=emb.mean["vt"], space="vt", k=1)
    assert by_vector.query_kind == "vector" and by_vector.space == "vt"
    by_file = vatt.search(file=server.corpus["red"], k=1, where={"colour": "red"}, include=["timeline"])
    assert [r.item.id for r in by_file.results] == [red] and by_file.results[0].timeline

    rec = vatt.recommend([Example(item_id=red)], negative=[{"text": "a blue screen with a whistle"}], k=3)
    assert isinstance(rec, SearchResponse) and red not in [r.item.id for r in rec.results]
    batch = vatt.search_batch([{"text": "a red screen with a low hum", "k": 1},
                               SearchRequest(text="a blue screen with a whistle", k=1)])
    assert isinstance(batch, SearchBatchResponse)
    assert [r.results[0].item.id for r in batch.responses] == [red, blue]

    by_id = vatt.classify(["red", "green", "blue"], "a {} screen", item_id=red)
    assert isinstance(by_id, ClassifyResponse) and by_id.best == "red" and abs(sum(by_id.probabilities) - 1) < 1e-5
    by_upload = vatt.classify(["red", "blue"], file=server.corpus["blue"])
    assert by_upload.prompts == ["a video of red", "a video of blue"] and by_upload.segments


def test_items_jobs_media_and_transcripts(vatt: Client, server: LiveServer, ingested: dict[str, str],
                                          tmp_path: Path) -> None:
    clip = make_video(tmp_path / "purple.mp4", duration=4.0, fps=10, width=64, height=64)
    (tmp_path / "purple.vtt").write_text(VTT, encoding="utf-8")
    accepted = vatt.ingest(clip, {"colour": "purple", "n": 1}, source="purple clip", transcript=tmp_path / "purple.vtt")
    assert isinstance(accepted, JobAccepted) and accepted.status in ("queued", "running")
    seen: list[JobOut] = []
    job = vatt.wait(accepted.job_id, seen.append, poll_s=0.05)
    assert isinstance(job, JobOut) and job.status == "done" and seen[-1] == job
    item_id = job.item_id
    assert vatt.job(accepted.job_id).status == "done"
    jobs = vatt.list_jobs(status="done", limit=100)
    assert isinstance(jobs, JobsPage) and accepted.job_id in [j.id for j in jobs.jobs]
    with pytest.raises(APIError) as busy:  # a finished job cannot be cancelled
        vatt.cancel_job(accepted.job_id)
    assert busy.value.status == 409 and "already done" in busy.value.message

    again = vatt.ingest_path(str(server.corpus["green"]), {"colour": "ignored"})  # a duplicate: its item, a note
    assert vatt.wait(again.job_id, poll_s=0.05).item_id == ingested["green"] and again.note

    everything = list(vatt.iter_items(page_size=2))  # several pages on the cursor
    assert len(everything) == vatt.list_items().total >= 4 and len({i.id for i in everything}) == len(everything)
    page = vatt.list_items(kinds=["video"], where={"colour": "purple"})
    assert isinstance(page, ItemsPage) and page.total == 1 and page.items[0].source == "purple clip"
    item = vatt.get_item(item_id, vectors=True)
    assert isinstance(item, ItemWithVectors) and item.vectors and len(item.vectors["va"].item) > 0
    patched = vatt.patch_metadata(item_id, {"n": None, "tag": "x"})
    assert isinstance(patched, ItemOut) and patched.metadata == {"colour": "purple", "tag": "x"}
    assert vatt.put_metadata(item_id, {"only": True}).metadata == {"only": True}

    cues = vatt.transcript(item_id)
    assert isinstance(cues, TranscriptOut) and [c.text for c in cues.cues] == ["a purple dog", "barks twice"]
    assert vatt.transcript_vtt(item_id).startswith("WEBVTT") and "barks twice" in vatt.transcript_vtt(item_id)
    replaced = vatt.set_transcript(item_id, [{"start": 0.0, "end": 1.0, "text": "one line"}])
    assert [c.text for c in replaced.cues] == ["one line"]
    assert [c.text for c in vatt.set_transcript(item_id, VTT).cues] == ["a purple dog", "barks twice"]

    jpeg = vatt.thumbnail(item_id, t=1.0)
    assert jpeg[:3] == b"\xff\xd8\xff"
    whole = vatt.media(item_id)
    assert whole == clip.read_bytes() and vatt.media(item_id, byte_range=(0, 9)) == whole[:10]
    assert vatt.media_url(item_id) == f"{server.url}/media/{item_id}" == f"{server.url}{item.media_url}"

    assert vatt.delete_item(item_id) == Deleted(id=item_id, deleted=True)
    with pytest.raises(APIError) as gone:
        vatt.get_item(item_id)
    assert gone.value.status == 404 and gone.value.code == "not_found" and item_id in gone.value.message
    assert str(gone.value).startswith("HTTP 404 not_found: ")


def test_errors_are_one_family_with_the_servers_message(vatt: Client, server: LiveServer) -> None:
    with pytest.raises(APIError) as unknown:
        vatt.embeddings("a red screen", "no-such-model")
    assert unknown.value.status == 404 and unknown.value.code == "model_not_found"  # OpenAI's body under /v1
    assert "does not exist on this server" in unknown.value.message
    with pytest.raises(APIError) as invalid:
        vatt.search("a red screen", k=0)
    assert invalid.value.status == 422 and "k" in invalid.value.message
    with Client(server.url) as anonymous, pytest.raises(APIError) as refused:
        anonymous.delete_item("whatever")
    assert refused.value.status == 401 and "X-API-Key" in refused.value.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", retries=0) as nowhere, pytest.raises(UnreachableError) as down:
        nowhere.healthz()
    assert isinstance(down.value, ClientError) and f"127.0.0.1:{port}" in str(down.value)


def test_async_client(server: LiveServer, ingested: dict[str, str]) -> None:
    async def run() -> None:
        async with AsyncClient(server.url, api_key=API_KEY) as vatt:
            assert isinstance(await vatt.healthz(), Health) and (await vatt.readyz()).ready
            hits, page, item = await asyncio.gather(vatt.search("a blue screen with a whistle", k=1),
                                                    vatt.list_items(limit=2), vatt.get_item(ingested["red"]))
            assert hits.results[0].item.id == ingested["blue"] and isinstance(page, ItemsPage) and page.limit == 2
            assert isinstance(item, ItemWithVectors) and item.metadata["colour"] == "red"
            emb = await vatt.embed_file(server.corpus["green"])  # multipart from the async client
            assert isinstance(emb, EmbedFileResponse) and set(emb.mean) == {"va", "vt"}
            rec = await vatt.recommend([{"item_id": ingested["green"]}], k=1)
            assert rec.results and rec.results[0].item.id != ingested["green"]
            assert isinstance(await vatt.models(), OpenAIModelList)
            ids = [item.id async for item in vatt.iter_items(kinds=["video"], page_size=1)]
            assert set(ingested.values()) <= set(ids) and len(ids) == len(set(ids))
            assert vatt.media_url(ingested["red"]) == f"{server.url}/media/{ingested['red']}"
            with pytest.raises(APIError) as missing:
                await vatt.get_item("no-such-item")
            assert missing.value.status == 404 and "no-such-item" in missing.value.message

    asyncio.run(run())


@pytest.fixture()
def one_slot_server(trained_model_dir: Path, tmp_path: Path) -> LiveServer:
    """A server that encodes one file at a time (max_concurrent_encodes=1): a second upload is a 429."""
    settings = Settings(model_dir=trained_model_dir, data_dir=tmp_path / "data", api_key=API_KEY,
                        max_concurrent_encodes=1, torch_threads=1)
    srv, thread, host, port = run_server(settings)
    try:
        yield LiveServer(f"http://{host}:{port}", host, port, settings, {}, srv.config.app)
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def _hold_the_slot(server: LiveServer) -> socket.socket:
    """An upload that sent its headers and a first part, then stalls: it holds the one encode slot."""
    sock = socket.create_connection((server.host, server.port))
    sock.sendall((f"POST /embed HTTP/1.1\r\nHost: {server.host}\r\nX-API-Key: {API_KEY}\r\n"
                  "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 100000\r\n\r\n"
                  "--b0undary\r\n").encode())
    admission = server.app.state.admission
    deadline = time.monotonic() + 10
    while admission.active < 1:
        assert time.monotonic() < deadline, "the stalled upload did not take the slot"
        time.sleep(0.02)
    return sock


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_429_is_retried_after_retry_after(one_slot_server: LiveServer, corpus: dict[str, Path],
                                            flavour: str) -> None:
    admission = one_slot_server.app.state.admission
    stalled = _hold_the_slot(one_slot_server)
    refused_before, start = admission.refused, time.monotonic()

    def release_once_refused() -> None:  # the client got its 429: the stalled upload goes away, freeing the slot
        deadline = time.monotonic() + 60
        while admission.refused == refused_before and time.monotonic() < deadline:
            time.sleep(0.01)
        stalled.close()

    threading.Thread(target=release_once_refused, daemon=True).start()
    if flavour == "sync":
        with Client(one_slot_server.url, api_key=API_KEY) as vatt:
            emb = vatt.embed_file(corpus["red"])
    else:
        async def run() -> EmbedFileResponse:
            async with AsyncClient(one_slot_server.url, api_key=API_KEY) as vatt:
                return await vatt.embed_file(corpus["red"])
        emb = asyncio.run(run())
    assert isinstance(emb, EmbedFileResponse) and emb.segments
    assert admission.refused == refused_before + 1  # refused once (429) ...
    assert time.monotonic() - start >= admission.retry_after_s  # ... and tried again after Retry-After
    with Client(one_slot_server.url, api_key=API_KEY, retries=0) as impatient:  # no retries: the 429 itself
        held = _hold_the_slot(one_slot_server)
        try:
            with pytest.raises(APIError) as busy:
                impatient.embed_file(corpus["red"])
        finally:
            held.close()
    assert busy.value.status == 429 and "max_concurrent_encodes" in busy.value.message


def test_the_readme_examples_run(server: LiveServer, ingested: dict[str, str], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Python client\n")[1].split("\n### ")[0]
    blocks = [b.split("```")[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 2
    clip = make_video(tmp_path / "readme.mp4", duration=4.4, fps=10, width=64, height=64)  # not the purple clip
    try:
        for block in blocks:
            code = (block.replace("http://127.0.0.1:8000", server.url).replace('api_key="..."', f'api_key="{API_KEY}"')
                    .replace('"clip.mp4"', repr(str(clip))).replace('"ID1"', repr(ingested["red"])))
            exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example, as a user runs it
    finally:  # the session's server is shared: leave its catalogue as the example found it
        with Client(server.url, api_key=API_KEY) as vatt:
            for item in vatt.list_items(where={"lang": "en"}).items:
                vatt.delete_item(item.id)
    out = capsys.readouterr().out
    assert "404 no item with id" in out and out.count("\n") >= 3, out


def test_the_client_loads_no_server_and_the_cli_help_no_client() -> None:
    """`import app.client` brings no FastAPI, uvicorn or FAISS (local mode loads the app when asked); `vatt --help`
    does not import the client at all."""
    import subprocess
    import sys

    probe = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
             "print(' '.join(m for m in sys.argv[2:] if m in sys.modules))")

    def loaded(module: str, *names: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", probe, module, *names], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert loaded("app.client", "fastapi", "uvicorn", "faiss", "app.main", "app.client") == ["app.client"]
    assert loaded("vatt_cli.main", "app.client", "app.schemas", "fastapi", "vatt_cli.main") == ["vatt_cli.main"]


def test_local_read_only_beside_the_server(server: LiveServer, trained_model_dir: Path, ingested: dict[str, str]) -> None:
    """connect(model, data, read_only=True) on the live server's data directory: the same app in-process reads
    the catalogue the server holds, and a write is refused at once (a lasting 503 is not retried)."""
    from app.client import connect

    with connect(url=None, model=trained_model_dir, data=server.settings.data_dir, read_only=True,
                 settings_overrides={"torch_threads": 1}) as local, Client(server.url) as remote:
        assert local.where.endswith(str(server.settings.data_dir))
        here, there = local.search("a green screen with a beep", k=3), remote.search("a green screen with a beep", k=3)
        assert [r.item.id for r in here.results] == [r.item.id for r in there.results]
        assert here.results[0].item.id == ingested["green"]
        assert local.classify(["red", "green"], "a {} screen", item_id=ingested["green"]).best == "green"
        start = time.monotonic()
        with pytest.raises(APIError) as refused:
            local.ingest(server.corpus["red"])
        assert refused.value.status == 503 and refused.value.code == "read_only" and "--url" in refused.value.message
        assert time.monotonic() - start < 5  # not retried: another try would not change it
