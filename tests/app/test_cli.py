"""The `vatt` CLI against the live server (--url) and on a local model + data directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from app_corpus import CLIPS
from app_server import API_KEY, LiveServer
from typer.testing import CliRunner

from app.cli import BUNDLED_DEMO_MODEL
from vatt_cli.main import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def vatt(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_search_prints_a_table_of_items_and_moments(server: LiveServer, ingested: dict[str, str]) -> None:
    result = vatt("search", CLIPS[1].caption, "--url", server.url, "--k", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["#", "score", "item", "kind", "source", "moments"]
    assert lines[2].split()[2] == ingested["green"] and "green.mp4" in lines[2]
    assert "0.0-3.2s" in lines[2] or "3.2-6.4s" in lines[2]
    assert len(lines) == 4


def test_search_by_file_and_json_output(server: LiveServer, ingested: dict[str, str]) -> None:
    result = vatt("search", "--file", server.corpus["blue"], "--url", server.url, "--api-key", API_KEY,
                  "--json", "--k", "1")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["space"] == "va" and body["results"][0]["item"]["id"] == ingested["blue"]


def test_embed_and_classify(server: LiveServer, ingested: dict[str, str]) -> None:
    result = vatt("embed", server.corpus["red"], "--url", server.url, "--api-key", API_KEY)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert len(body["segments"]) == 2 and set(body["mean"]) == {"va", "vt"}
    result = vatt("embed", "--text", "a red screen", "--text", "a dog", "--url", server.url)
    assert [len(e["vt"]) for e in json.loads(result.output)["embeddings"]] == [32, 32]

    labels = ",".join(c.caption.replace(",", "") for c in CLIPS)
    result = vatt("classify", server.corpus["red"], "--labels", labels, "--template", "{}", "--url", server.url,
                  "--api-key", API_KEY)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["label", "probability"] and lines[2].startswith(CLIPS[0].caption)
    assert sum(float(line.rsplit(maxsplit=1)[1]) for line in lines[2:5]) == pytest.approx(1.0, abs=2e-3)
    result = vatt("classify", "--item", ingested["blue"], "--labels", labels, "--template", "{}", "--url",
                  server.url, "--json")
    assert json.loads(result.output)["best"] == CLIPS[2].caption


@pytest.mark.parametrize("args,message,code", [  # code 2: a usage error (issue 28 item 9's exit codes)
    (["search", "a dog", "--kind", "audio"], "HTTP 400 no_shared_space: text -> audio", 1),
    (["classify", "--item", "f" * 32, "--labels", "a,b"], "HTTP 404 not_found", 1),
    (["search"], "give exactly one query", 2),
    (["search", "x", "--where", "{bad"], "--where must be JSON", 1),
])
def test_errors_are_one_line_and_exit_1(server: LiveServer, args: list[str], message: str, code: int) -> None:
    result = vatt(*args, "--url", server.url)
    assert result.exit_code == code
    assert result.stderr.startswith("vatt: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_unreachable_server_and_missing_target() -> None:
    result = vatt("search", "x", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "cannot reach the service at http://127.0.0.1:9" in result.stderr
    # no --url: VATT_URL, else http://127.0.0.1:8000 (issue 28 item 10); --model without --data says what is missing
    result = runner.invoke(app, ["search", "x"], env={"VATT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1 and "cannot reach the service at http://127.0.0.1:9" in result.stderr
    result = vatt("search", "x", "--model", "m")
    assert result.exit_code == 2 and "--url URL" in result.stderr


def test_local_mode_ingests_a_directory_and_searches_it(trained_model_dir: Path, corpus: dict[str, Path],
                                                         tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "nested").mkdir(parents=True)
    shutil.copy(corpus["red"], media / "red.mp4")
    shutil.copy(corpus["blue"], media / "nested" / "blue.mp4")
    (media / "notes.txt").write_text("not media, skipped when walking a directory")
    data = tmp_path / "data"
    local = ("--model", trained_model_dir, "--data", data)
    result = vatt("ingest", media, *local, "--metadata", '{"set": "cli"}')
    assert result.exit_code == 0, result.output
    printed = [line.split() for line in result.stdout.strip().splitlines()]
    assert sorted(Path(p).name for _, p in printed) == ["blue.mp4", "red.mp4"]
    ids = {Path(p).name: i for i, p in printed}
    result = vatt("search", CLIPS[2].caption, *local, "--json")
    assert result.exit_code == 0, result.output
    top = json.loads(result.output)["results"][0]["item"]
    assert top["id"] == ids["blue.mp4"] and top["metadata"] == {"set": "cli"}
    bad = vatt("ingest", media / "notes.txt", *local)
    assert bad.exit_code == 1 and "415" in bad.stderr and "notes.txt" in bad.stderr


def test_module_entry_point_and_serve_refuses_a_bad_model_dir(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vatt_cli", "serve", "--model", str(tmp_path / "nope"), "--data",
                           str(tmp_path / "data")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"vatt: error: model directory not found: {tmp_path / 'nope'}"


def test_demo_prepares_corpus_model_and_catalogue_then_reuses_them(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = vatt("demo", "--data", data, "--prepare-only", "--clips", "5", "--steps", "2", "--train")
    assert result.exit_code == 0, result.output
    assert (data / "model" / "config.json").is_file() and (data / "corpus" / "train.jsonl").is_file()
    assert "ingested 6 of 6 files" in result.stderr  # 5 training clips + 1 held out; off a terminal: a summary line
    listed = vatt("search", "a red circle", "--model", data / "model", "--data", data, "--json", "--k", "50")
    first = {r["item"]["id"] for r in json.loads(listed.output)["results"]}
    assert len(first) == 6
    again = vatt("demo", "--data", data, "--prepare-only", "--clips", "5", "--steps", "2")
    assert again.exit_code == 0, again.output
    assert "ingest: done by an earlier run" in again.stderr  # nothing rebuilt (issue 28 item 15: the stamp)
    listed = vatt("search", "a red circle", "--model", data / "model", "--data", data, "--json", "--k", "50")
    assert {r["item"]["id"] for r in json.loads(listed.output)["results"]} == first


def test_demo_quiet_uses_the_bundled_model_for_a_smaller_corpus_and_logs_one_line_per_stage(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = vatt("demo", "--data", data, "--prepare-only", "--clips", "5", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # no per-item ids
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("generating 5 synthetic clips") and lines[1].startswith("using the bundled demo model")
    assert lines[-1].startswith("ingested 6 of 6 files in ")
    assert not any("file/s" in line or "it/s" in line for line in lines)  # no progress bar
    assert (data / "model" / "model.safetensors").read_bytes() == (BUNDLED_DEMO_MODEL / "model.safetensors").read_bytes()
