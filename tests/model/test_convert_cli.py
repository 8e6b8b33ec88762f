"""`vatt convert` through typer's CliRunner, registered the way the root CLI registers it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from model.convert.cli import EXIT_CONVERSION_ERROR, app, convert_command
from model import VATT, load_pretrained
from model.convert import ConversionError, TFCheckpoint, convert_to_directory

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # tests/model holds the test-only checkpoint writer
    sys.path.insert(0, _HERE)

from tf_writer import write_checkpoint  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
runner = CliRunner()


def _root() -> typer.Typer:
    """A root app with more than one command, as the `vatt` command (vatt_cli.main) is, so `convert` is a real subcommand."""
    root = typer.Typer()
    root.command("convert")(convert_command)

    @root.command("other")
    def other() -> None:  # pragma: no cover - only there to make `convert` a subcommand
        """Placeholder."""

    return root


def test_convert_writes_a_model_directory_and_prints_one_line(tmp_path: Path) -> None:
    vocab = tmp_path / "howto100m_en.txt"
    vocab.write_text("\n".join(["<pad>", "<unk>", *(f"w{i}" for i in range(998))]) + "\n")
    out = tmp_path / "m"
    result = runner.invoke(_root(), ["convert", "--checkpoint", str(FIXTURES / "tx_fac_tiny" / "ckpt-1"),
                                     "--out", str(out), "--vocab", str(vocab), "--d-kv", "16", "--name", "tiny-ms"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("converted ckpt-1 (pretrain-ms) -> ")
    assert "tiny-ms" in lines[0] and "d_kv=16" in lines[0] and "with vocabulary" in lines[0]
    assert isinstance(load_pretrained(out), VATT)


def test_the_sub_app_runs_the_command_alone(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--checkpoint", str(FIXTURES / "ut_fac_tiny" / "ckpt-1"), "--out",
                                 str(tmp_path / "m"), "--d-kv", "16"])
    assert result.exit_code == 0, result.output
    assert "(pretrain-ma)" in result.stdout and "no vocabulary" in result.stdout


def test_bad_path_exits_2_with_one_error_line_and_no_output(tmp_path: Path) -> None:
    result = runner.invoke(_root(), ["convert", "--checkpoint", str(tmp_path / "nope" / "ckpt-1"),
                                     "--out", str(tmp_path / "m")])
    assert result.exit_code == EXIT_CONVERSION_ERROR == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vatt: error: no checkpoint index at ")
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "m").exists()


def test_multi_line_refusals_become_one_line(tmp_path: Path) -> None:
    with TFCheckpoint(FIXTURES / "tx_fac_tiny" / "ckpt-1") as ckpt:
        tensors = {k: ckpt.read(k) for k in ckpt.keys() if ckpt.tf_dtype(k) != "string" and "hid_to_va/bn/" not in k}
    prefix = write_checkpoint(tmp_path / "ckpt" / "ckpt-1", tensors)
    with pytest.raises(ConversionError, match="\n"):  # the library message spans lines
        convert_to_directory(prefix, tmp_path / "m", d_kv=16)
    result = runner.invoke(_root(), ["convert", "--checkpoint", prefix, "--out", str(tmp_path / "m"), "--d-kv", "16"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model tensors missing from the checkpoint (4): heads.hid_to_va.bn" in lines[0]
