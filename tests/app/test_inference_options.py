"""Precision and token budget through settings, the GPU path's batching on the CPU, and files
ingested together sharing forwards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from app.services.batcher import Batcher
from app.services.encoder import Encoder
from app.settings import Settings
from model import WordTokenizer


def test_precision_and_keep_tokens_round_trip_through_settings(monkeypatch, tmp_path: Path) -> None:
    dirs = dict(model_dir=tmp_path, data_dir=tmp_path)
    monkeypatch.setenv("VATT_PRECISION", "int8")
    monkeypatch.setenv("VATT_KEEP_TOKENS", "0.5")
    monkeypatch.setenv("VATT_DEVICE", "cpu")
    s = Settings(**dirs)
    assert (s.precision, s.keep_tokens, s.inference_precision()) == ("int8", 0.5, "int8")
    for asked in ("auto", "fp32", "bf16"):  # auto is resolved at load, by the model and the machine
        monkeypatch.setenv("VATT_PRECISION", asked)
        assert Settings(**dirs).inference_precision() == asked
    monkeypatch.delenv("VATT_PRECISION")
    assert Settings(**dirs).precision == "auto"  # the default for serving and bulk
    monkeypatch.setenv("VATT_PRECISION", "int8")
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        Settings(**dirs, device="cuda").inference_precision()
    for bad in ({"precision": "fp16"}, {"keep_tokens": 0.0}, {"keep_tokens": 1.5}):
        with pytest.raises(ValidationError):
            Settings(**dirs, **bad)


def test_batches_of_a_bf16_model_run_on_the_cpu_path(tiny_model) -> None:
    """A bf16-cast model (precision="bf16") batches like any other: fp32 unit vectors near fp32's."""
    import copy

    from model.inference import cast_bf16

    video = torch.rand(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    plain = Batcher(tiny_model).start()
    half = Batcher(cast_bf16(copy.deepcopy(tiny_model))).start()
    try:
        assert not half.pin
        a, b = plain.run("video", video)["va"], half.run("video", video)["va"]
    finally:
        plain.close()
        half.close()
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(1).min() > 0.99  # bf16 keeps ~3 significant digits


def test_files_ingested_together_share_forwards_and_keep_their_order(tiny_model, make_media) -> None:
    paths = [make_media(f"f{i}.mp4", duration=10.0, width=96 + 64 * i, height=64 + 16 * i) for i in range(2)]
    tok = WordTokenizer(["<pad>", "<unk>", "a"])
    alone = Batcher(tiny_model, max_rows=64).start()
    try:
        single = [Encoder(tiny_model, tok, alone, chunk=1).embed_file(p) for p in paths]
    finally:
        alone.close()
    batcher = Batcher(tiny_model, max_rows=64)  # not started: both files queue their chunks first
    encoder = Encoder(tiny_model, tok, batcher, chunk=1, prefetch=4)
    out: list = [None, None]
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, encoder.embed_file(paths[i]))) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while batcher._queue.qsize() < 4 and time.monotonic() < deadline:  # two chunks in flight per file
        time.sleep(0.01)
    batcher.start()
    try:
        for t in threads:
            t.join(60)
    finally:
        batcher.close()
    assert batcher.stats.largest >= 4 and batcher.stats.forwards < 6  # 6 windows, fewer forwards
    for got, want in zip(out, single):
        assert got.starts == want.starts and got.n_segments == 3
        for space in ("va", "vt"):
            np.testing.assert_allclose(got.vectors[space], want.vectors[space], atol=1e-5)
    assert not np.allclose(out[0].vectors["va"], out[1].vectors["va"], atol=1e-3)  # no mix-up to hide


def test_serve_refuses_a_precision_the_device_cannot_run(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from app.cli import BUNDLED_DEMO_MODEL
    from vatt_cli.main import app

    monkeypatch.setenv("VATT_DEVICE", "cpu")
    monkeypatch.setenv("VATT_DEVICE", "cuda")
    result = CliRunner().invoke(app, ["serve", "--model", str(BUNDLED_DEMO_MODEL), "--data", str(tmp_path),
                                      "--precision", "int8"])
    assert result.exit_code == 1 and "int8 runs on the CPU only" in result.output
    monkeypatch.setenv("VATT_DEVICE", "cpu")
    monkeypatch.setenv("VATT_KEEP_TOKENS", "2")
    result = CliRunner().invoke(app, ["serve", "--model", str(BUNDLED_DEMO_MODEL), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "keep-tokens" in result.output.replace("\n", "")  # the usage error names it


def test_local_ingest_and_the_service_run_bf16_close_to_fp32(tmp_path: Path, make_media) -> None:
    """`vatt ingest --model --precision bf16` and /readyz; a file's vectors within cosine 0.999 of fp32."""
    from typer.testing import CliRunner

    from app.cli import BUNDLED_DEMO_MODEL, app
    from app.client import connect

    clip = make_media("clip.mp4", duration=4.0)
    result = CliRunner().invoke(app, ["ingest", str(clip), "--model", str(BUNDLED_DEMO_MODEL), "--data",
                                      str(tmp_path / "bf16"), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    vectors = {}
    for precision in ("bf16", "fp32"):
        with connect(url=None, model=BUNDLED_DEMO_MODEL, data=tmp_path / precision,
                     settings_overrides={"precision": precision, "torch_threads": 1}) as client:
            ready = client.readyz()
            assert (ready.precision, ready.precision_requested, ready.precision_reason) == (precision, precision,
                                                                                            "asked for")
            assert client.list_items().total == (1 if precision == "bf16" else 0)
            vectors[precision] = client.embed_file(clip).segments
    for half, full in zip(vectors["bf16"], vectors["fp32"], strict=True):
        for space in ("va", "vt"):
            a, b = np.asarray(getattr(half, space)), np.asarray(getattr(full, space))
            assert a @ b >= 0.999 and abs(np.linalg.norm(a) - 1) < 1e-4, (space, a @ b)


def test_doctor_names_the_capability_and_the_precision_auto_picks() -> None:
    import json

    from typer.testing import CliRunner

    from app.cli import app
    from model import probe_capability

    result = CliRunner().invoke(app, ["doctor", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    cap = probe_capability("cpu")
    assert report["torch"] == torch.__version__ and report["capability"]["bf16_units"] == cap.bf16_units
    assert report["matmul_gflops"]["fp32"] > 0 and report["matmul_gflops"]["bf16"] > 0
    chosen = report["precision"]
    assert chosen["requested"] == "auto" and chosen["precision"] in (("bf16",) if cap.bf16_units else ("fp32", "int8"))
    assert chosen["reason"]
