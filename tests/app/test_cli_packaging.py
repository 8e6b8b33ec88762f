"""Packaging seen from the command line: --version, -v/-q, and `vatt train` without the train extra."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from vatt_cli.main import app

REPO = Path(__file__).resolve().parents[2]


def _vatt_without_tensorboard(*args: str) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh interpreter where `import tensorboard` fails,
    as in an install without the train extra."""
    code = ("import sys; sys.modules['tensorboard'] = None; from vatt_cli.main import main; "
            f"sys.argv = ['vatt', *{list(args)!r}]; main()")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"vatt {version('vatt')}"


def test_train_without_the_train_extra_says_how_to_install_it(tmp_path: Path) -> None:
    proc = _vatt_without_tensorboard("train", "--train-manifest", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 1, proc.stderr
    assert "tensorboard is not installed" in proc.stderr and "pip install 'vatt[train]'" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback
    # the service side never needs it: the other commands still answer
    proc = _vatt_without_tensorboard("index", "--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr


def test_verbose_and_quiet_move_the_log_level(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        for flags, want in (([], logging.WARNING), (["-v"], logging.INFO), (["-v", "-v"], logging.DEBUG),
                            (["-vvv"], logging.DEBUG), (["-q"], logging.ERROR), (["--quiet", "-q"], logging.CRITICAL),
                            (["-v", "-q"], logging.WARNING)):
            root.setLevel(logging.WARNING)  # what main() sets for a short command
            result = CliRunner().invoke(app, [*flags, "index", "stats", str(tmp_path / "missing")])
            assert result.exit_code != 0 and "no catalogue" in result.output  # the command itself still ran
            assert root.level == want, (flags, logging.getLevelName(root.level))
    finally:
        root.setLevel(before)


def test_every_package_is_in_the_wheel() -> None:
    """pyproject lists the packages by name: one left out installs without it (the Docker image's `vatt
    demo` failed on `No module named 'app.client'` when app/client.py became a package)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for top in ("model", "training", "index", "app", "vatt_cli") for init in (REPO / top).rglob("__init__.py")}
    assert found == listed, (found - listed, listed - found)
