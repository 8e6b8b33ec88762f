"""The arrows of DESIGN.md, enforced: app -> model, index; training -> model; nothing imports app.

`index` never imports torch. The CLI root (app/cli.py) may import `training`, but only inside
functions (lazily), so serving never loads the trainer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"model", "training", "index", "app"}
ALLOWED = {"model": set(), "index": set(), "training": {"model"}, "app": {"model", "index"}}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PROJECT))
def test_package_imports_follow_the_arrows(package: str) -> None:
    bad = []
    for path in _modules(package):
        lazy_ok = path == ROOT / "app" / "cli.py"
        used = _imports(path, top_level_only=lazy_ok) & PROJECT - {package}
        if used - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(used - ALLOWED[package])}")
    assert bad == []


def test_index_never_imports_torch() -> None:
    assert [str(p) for p in _modules("index") if "torch" in _imports(p, top_level_only=False)] == []


def test_every_package_declares_its_public_face() -> None:
    for package in PROJECT:
        init = ROOT / package / "__init__.py"
        assert "__all__" in init.read_text(encoding="utf-8"), f"{package}/__init__.py sets no __all__"
