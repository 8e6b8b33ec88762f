"""The `vatt` command's contract (issue 28, items 9-16): a table of (command, exit code, first line), run
through the real entry (`vatt_cli.run_app`, what the console script calls) and, for a few rows, the
installed `vatt` console script in a fresh process; a real `vatt serve` for the locked catalogue and the
busy port; the settings' errors and README's settings table."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from media_factory import make_video

from app.cli import BUNDLED_DEMO_MODEL
from app.settings import SettingsError, load_settings, settings_table
from vatt_cli import EXIT_CODES, run_app
from vatt_cli.main import app

REPO = Path(__file__).resolve().parents[2]
VATT = Path(sys.executable).parent / "vatt"  # the console script this environment installed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_app(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _script(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VATT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _first(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# (arguments, exit code, the first line of stderr (or stdout for help) starts with); {missing} and {port} filled
TABLE = [
    (["search", "--nope"], 2, "vatt: error: No such option: --nope"),
    (["search"], 2, "vatt: error: give exactly one query: TEXT, --file FILE or --item ID"),
    (["embed"], 2, "vatt: error: give a FILE or --text, not both"),
    (["-v", "2", "search", "x"], 2, "vatt: error: No such command '2'. (-v and -q count: -vv"),
    (["index", "stats", "{missing}"], 2, "vatt: error: no catalogue directory at {missing}"),
    (["index", "check", "{missing}", "-v"], 2, "vatt: error: No such option: -v"),  # -v is the global one
    (["index", "import", "{missing}"], 2, "vatt: error: give --data DIR"),
    (["eval", "--bogus"], 2, "vatt: error: the following arguments are required: --model, --manifest"),
    (["finetune", "--model", "m"], 2, "vatt: error: the following arguments are required"),
    (["search", "x", "--data", "{missing}"], 2, "vatt: error: --data needs --model DIR"),
    (["search", "x", "--model", "{missing}"], 2, "vatt: error: --model needs --data DIR"),
    (["search", "x", "--url", "http://127.0.0.1:{port}"], 1, "vatt: error:"),
    (["search", "x", "--read-only"], 2, "vatt: error: --read-only applies to local mode (--model DIR --data DIR)"),
    (["bulk-embed", "--help"], 0, "usage: vatt bulk-embed"),
]


@pytest.mark.parametrize("args, code, first", TABLE, ids=[" ".join(r[0]) for r in TABLE])
def test_table(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], code: int, first: str) -> None:
    fill = {"missing": str(tmp_path / "missing"), "port": str(_free_port())}
    got_code, out, err = _in_process(capsys, *[a.format(**fill) for a in args])
    shown = out if code == 0 else err
    assert got_code == code, (out, err)
    assert _first(shown).startswith(first.format(**fill)), shown
    if code:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert code in EXIT_CODES


@pytest.mark.parametrize("args, code, first", [TABLE[0], TABLE[4], TABLE[-1]], ids=["option", "index", "bulk-help"])
def test_table_through_the_console_script(tmp_path: Path, args: list[str], code: int, first: str) -> None:
    fill = {"missing": str(tmp_path / "missing"), "port": "1"}
    proc = _script(*[a.format(**fill) for a in args])
    assert proc.returncode == code, proc.stderr
    assert _first(proc.stdout if code == 0 else proc.stderr).startswith(first.format(**fill))


def test_help_shows_counting_flags_and_the_new_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _in_process(capsys, "--help")
    assert code == 0
    verbose = next(line for line in out.splitlines() if "--verbose" in line)
    assert "-v" in verbose and "int" not in verbose.lower() and "-vv" in verbose
    assert "Exit codes: 0 done; 1" in " ".join(out.split())
    code, out, _ = _in_process(capsys, "search", "--help")
    assert code == 0 and re.search(r"--k\s+-k", out) and "VATT_URL" in out and "http://127.0.0.1:8000" in out
    code, out, _ = _in_process(capsys, "index", "check", "--help")
    assert "--notes" in out and "--verbose" not in out and "-v " not in out
    for command, new, old in (("train", "--out", "--output-dir"), ("train", "--preset", "--model"),
                              ("finetune", "--out", "--output-dir"), ("eval", "--out", "--output"),
                              ("probe", "--out", "--output"), ("demo", "--no-progress", "--quiet"),
                              ("ingest", "--no-progress", "--quiet")):
        code, out, err = _in_process(capsys, command, "--help")
        assert code == 0, err
        assert new in out and not re.search(rf"{re.escape(old)}\b(?!-)", out), (command, old)


def test_old_spellings_still_parse() -> None:
    from training import evaluate, finetune, params, probe

    for argv in (["--out", "runs", "--preset", "tiny"], ["--output-dir", "runs", "--model", "tiny"]):
        ns = params.build_parser().parse_args(["--train-manifest", "t.jsonl", *argv])
        assert (ns.output_dir, ns.model) == ("runs", "tiny")
    for flag in ("--out", "--output-dir"):
        ns = finetune.build_parser().parse_args(["--model", "m", "--modality", "video", "--label", "y",
                                                 "--train-manifest", "t.jsonl", flag, "clf"])
        assert ns.output_dir == "clf"
    src = (REPO / "training" / "evaluate.py").read_text() + (REPO / "training" / "probe.py").read_text()
    assert src.count('"--output", dest="output", help=argparse.SUPPRESS') == 2  # eval/probe keep --output hidden
    assert evaluate and probe


def test_index_stats_and_check_take_the_data_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from index import Catalog

    with Catalog(tmp_path / "data" / "catalog", spaces={"va": 4}):
        pass
    code, out, err = _in_process(capsys, "index", "stats", tmp_path / "data")
    assert code == 0 and _first(out) == f"catalogue  {tmp_path / 'data' / 'catalog'}", err
    code, out, err = _in_process(capsys, "index", "check", tmp_path / "data")
    assert code == 0 and out.startswith("ok: "), err


def test_embed_with_a_model_needs_no_data_and_creates_nothing(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", duration=4.0, fps=10, width=64, height=64)
    scratch_before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("vatt-scratch-*"))
    proc = _script("embed", clip, "--model", BUNDLED_DEMO_MODEL, cwd=tmp_path, env={"VATT_DATA_DIR": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{"kind": "video"') and '"segments"' in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no catalog/, media/, thumbs/, tmp/
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("vatt-scratch-*")) == scratch_before  # removed


@pytest.fixture()
def running_server(tmp_path: Path):
    """A real `vatt serve` (the console script) on a free port with the bundled demo model."""
    port, data = _free_port(), tmp_path / "data"
    proc = subprocess.Popen([str(VATT), "serve", "--model", str(BUNDLED_DEMO_MODEL), "--data", str(data),
                             "--port", str(port), "--log-level", "warning"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vatt serve did not become ready"
            time.sleep(0.5)
        yield url, port, data
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_running_server_holds_the_catalogue_and_the_port(running_server, tmp_path: Path) -> None:
    url, port, data = running_server
    # item 14: the busy port is refused before the model loads; nothing is created
    other = tmp_path / "other"
    proc = _script("serve", "--model", BUNDLED_DEMO_MODEL, "--data", other, "--port", port)
    assert proc.returncode == 3, proc.stderr
    assert _first(proc.stderr).startswith(f"vatt: error: port {port} on 127.0.0.1 is in use")
    assert len(proc.stderr.strip().splitlines()) == 1 and not other.exists()
    # item 13: local mode on the server's data says what to do on the command line: --url, or --read-only
    proc = _script("search", "a red screen", "--model", BUNDLED_DEMO_MODEL, "--data", data)
    assert proc.returncode == 3, proc.stderr
    assert _first(proc.stderr).startswith(f"vatt: error: the catalogue in {data} is held by a running server: "
                                          "talk to it with --url URL")
    assert "add --read-only to read it beside the server" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    clip = make_video(tmp_path / "clip.mp4", duration=4.0, fps=10, width=64, height=64)
    proc = _script("ingest", clip, "--model", BUNDLED_DEMO_MODEL, "--data", data)  # a write: no --read-only hint
    assert proc.returncode == 3 and "--url URL" in proc.stderr and "--read-only" not in proc.stderr, proc.stderr
    proc = _script("index", "rebuild", data)
    assert proc.returncode == 3 and "stop it first" in proc.stderr and "--url" in proc.stderr, proc.stderr
    # ... and what it points at works: --url (also from VATT_URL), --read-only, and the read-only index commands
    proc = _script("search", "a red screen", "-k", "1", env={"VATT_URL": url})
    assert proc.returncode == 0 and proc.stdout.startswith("no results"), proc.stderr
    proc = _script("ingest", clip, "--url", url)
    assert proc.returncode == 0, proc.stderr
    item_id = proc.stdout.split()[0]
    proc = _script("search", "a red screen", "-k", "1", "--model", BUNDLED_DEMO_MODEL, "--data", data, "--read-only")
    assert proc.returncode == 0 and item_id in proc.stdout.splitlines()[2], (proc.stdout, proc.stderr)
    proc = _script("classify", "--item", item_id, "--labels", "red,dog", "--model", BUNDLED_DEMO_MODEL,
                   "--data", data, "--read-only", "--json")
    assert proc.returncode == 0 and '"labels": [' in proc.stdout, proc.stderr
    for command in ("stats", "check"):
        proc = _script("index", command, data, "--read-only")
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: "), proc.stdout
    assert httpx.get(f"{url}/readyz", timeout=5).json()["items"] == 1  # the server was not disturbed


def test_settings_errors_name_the_variable_the_value_and_what_is_accepted(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("VATT_MAX_K", "0")
    with pytest.raises(SettingsError, match=r"^VATT_MAX_K=0 is refused \(.*\); accepted: int >= 1$"):
        load_settings(model_dir="m", data_dir="d")
    monkeypatch.delenv("VATT_MAX_K")
    with pytest.raises(SettingsError, match=r"^--precision=fp64 is refused .*accepted: str one of auto, fp32, int8, bf16$"):
        load_settings({"precision": "--precision"}, model_dir="m", data_dir="d", precision="fp64")
    monkeypatch.setenv("VATT_BATCH_SIZE", "many")
    code, _, err = _in_process(capsys, "serve", "--model", BUNDLED_DEMO_MODEL, "--data", tmp_path / "d",
                               "--port", _free_port())
    assert code == 2 and _first(err).startswith("vatt: error: VATT_BATCH_SIZE=many is refused"), err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value, want", [("http://a.example, http://b.example", ["http://a.example", "http://b.example"]),
                                         ('["http://a.example"]', ["http://a.example"]), ("", [])])
def test_list_settings_take_commas_or_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str,
                                           want: list[str]) -> None:
    monkeypatch.setenv("VATT_CORS_ORIGINS", value)
    monkeypatch.setenv("VATT_SERVER_PATH_ROOTS", f"{tmp_path}/a,{tmp_path}/b")
    s = load_settings(model_dir="m", data_dir="d")
    assert s.cors_origins == want
    assert s.server_path_roots == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]


def test_readme_settings_table_is_generated_from_the_settings() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- settings-table:start -->\n")[1].split("<!-- settings-table:end -->")[0]
    assert block.strip() == settings_table().strip(), "regenerate README's table from app.settings.settings_table()"
    from app.settings import Settings

    assert len(block.strip().splitlines()) == 2 + len(Settings.model_fields)


def test_demo_second_run_skips_finished_stages_and_draws_no_bars_off_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    first = _script("demo", "--data", data, "--clips", "2", "--prepare-only", timeout=600)
    assert first.returncode == 0, first.stderr
    assert "\r" not in first.stderr and re.search(r"ingested \d+ of \d+ files", first.stderr), first.stderr
    second = _script("demo", "--data", data, "--clips", "2", "--prepare-only", timeout=300)
    assert second.returncode == 0, second.stderr
    lines = second.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["corpus", "model", "ingest"], second.stderr  # a line per stage
    assert all(": done by an earlier run" in line for line in lines) and "\r" not in second.stderr


def test_train_draws_no_bars_off_a_terminal(tmp_path: Path) -> None:
    """`vatt train` piped to a file: one line per log step, no tqdm carriage-return frames."""
    from training.synthetic import generate

    generate(tmp_path / "corpus", n=8, n_heldout=0, seed=1, max_seconds=3.6)
    proc = _script("train", "--train-manifest", tmp_path / "corpus" / "train.jsonl", "--out", tmp_path / "runs",
                   "--name", "r", "--steps", "2", "--batch-size", "2", "--warmup-steps", "1", "--workers", "1",
                   "--log-every", "1", "--vocab-size", "100", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr and "it/s" not in proc.stderr, proc.stderr
    steps = [line for line in proc.stderr.splitlines() if "training.pretrain: step " in line]
    assert [line.split("step ")[1].split(":")[0] for line in steps] == ["1/2", "2/2"], proc.stderr
    assert (tmp_path / "runs" / "r" / "model" / "config.json").is_file()
