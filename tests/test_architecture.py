"""The arrows of DESIGN.md, enforced: app -> model, index; training -> model; nothing imports app.

`index` never imports torch. The `vatt` command is assembled above the packages (vatt_cli.main merges
each package's cli.py); below them, `vatt_cli` itself (how a command fails) imports no project package,
so every package's CLI may use it. No exception for any file.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"model", "training", "index", "app"}
ALLOWED = {"model": set(), "index": set(), "training": {"model"}, "app": {"model", "index"}}
ENTRY = "vatt_cli"  # the `vatt` command: its floor module `vatt_cli` below every package, the rest above


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
        used = _imports(path, top_level_only=False) & PROJECT - {package}
        if used - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(used - ALLOWED[package])}")
    assert bad == []


def _full_imports(path: Path) -> set[str]:
    """Dotted names of absolute imports anywhere in a file (`from a.b import c` gives a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_command_floor_is_below_and_the_entry_above_every_package() -> None:
    floor = ROOT / ENTRY / "__init__.py"
    assert not {m.split(".")[0] for m in _full_imports(floor)} & PROJECT, "vatt_cli/__init__.py imports a package"
    reach_up = [f"{p.relative_to(ROOT)} imports {m}" for package in PROJECT for p in _modules(package)
                for m in _full_imports(p) if m.startswith(ENTRY + ".")]
    assert reach_up == []  # packages use the floor (fail, one_line_errors), never the assembled command


def test_index_never_imports_torch() -> None:
    assert [str(p) for p in _modules("index") if "torch" in _imports(p, top_level_only=False)] == []


def test_every_package_declares_its_public_face() -> None:
    for package in PROJECT:
        init = ROOT / package / "__init__.py"
        assert "__all__" in init.read_text(encoding="utf-8"), f"{package}/__init__.py sets no __all__"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool, known: set[str]) -> set[str]:
    """Project modules a statement imports: in `from p import x`, x is the submodule p.x when there
    is one (then p itself is not the dependency), otherwise a name defined by p."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}


def _import_graph(*, functions: bool) -> dict[str, set[str]]:
    """module -> project modules it imports (`functions`: also imports inside function bodies;
    `if TYPE_CHECKING:` blocks count, since a circle there is still a circle in the design)."""
    paths = [p for package in sorted(PROJECT | {ENTRY}) for p in _modules(package)]
    known = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stack: list[ast.AST] = list(tree.body)
        edges = set()
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _resolve(name, node, path.name == "__init__.py", known) & known
            elif functions or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.extend(ast.iter_child_nodes(node))
        graph[name] = edges - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# Lazy imports inside functions that close a circle on purpose, each with its reason. Nothing else may;
# none does today (VATT loads through model/model_directory.py, which knows no model class).
LAZY_BACK_EDGES: set[tuple[str, str]] = set()


def test_no_import_circles_at_module_level() -> None:
    assert _cycles(_import_graph(functions=False)) == []


def test_no_import_circles_with_function_imports_but_the_declared_lazy_ones() -> None:
    graph = _import_graph(functions=True)
    module_level = _import_graph(functions=False)
    for src, dst in LAZY_BACK_EDGES:
        assert dst in graph[src] and dst not in module_level[src], f"stale LAZY_BACK_EDGES entry {src} -> {dst}"
        graph[src].discard(dst)
    assert _cycles(graph) == []


def test_the_circle_finder_finds_circles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# The catalogue composes a store and vector indexes; the parts never reach back into it (the old
# catalog <-> _consistency circle): each takes what it needs as arguments.
CATALOG_USERS = {"index", "index.catalog", "index.cli", "index.importer", "index.snapshot"}  # users above it


def test_the_catalogue_parts_never_import_the_catalogue() -> None:
    graph = _import_graph(functions=True)
    users = {m for m, deps in graph.items() if m.startswith("index") and "index.catalog" in deps}
    assert users <= CATALOG_USERS, f"{sorted(users - CATALOG_USERS)} import index.catalog"
    for part in ("index._consistency", "index._search", "index.store", "index.space_index", "index.faiss_index"):
        assert "index.catalog" not in graph[part]


# The vector seam, the Milvus backend and the catalogue itself never load FAISS: only index/faiss_index.py
# imports it, and the catalogue imports that module only when the FAISS backend is chosen.
_FAISS_GUARD = """
import builtins, sys
real = builtins.__import__
def guard(name, *args, **kwargs):
    if name == "faiss" or name.startswith("faiss."):
        raise ImportError("faiss is blocked for this check")
    return real(name, *args, **kwargs)
builtins.__import__ = guard
"""
_NO_FAISS = _FAISS_GUARD + """
import index, index.space_index, index.milvus, index.catalog, index.types
assert index.Catalog is index.catalog.Catalog
assert "faiss" not in sys.modules, sorted(m for m in sys.modules if "faiss" in m)
print("imported without faiss")
"""
_MILVUS_CATALOG = _FAISS_GUARD + """
import tempfile
import numpy as np
from index import Catalog
with Catalog(tempfile.mkdtemp(), spaces={"va": 4}, vectors=sys.argv[1]) as cat:
    cat.add_item(kind="audio", source="a.wav", sha256="0" * 64, segments=[[0.0, 1.0]],
                 vectors={"va": np.eye(4, dtype=np.float32)[:1]})
    hits = cat.search("va", np.eye(4, dtype=np.float32)[0], k=1)
    assert [h.item.source for h in hits] == ["a.wav"], hits
assert "faiss" not in sys.modules, sorted(m for m in sys.modules if "faiss" in m)
print("a Milvus catalogue without faiss")
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (the modules it loads are its own)."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_the_vector_seam_milvus_and_the_catalogue_import_without_faiss() -> None:
    proc = _python(_NO_FAISS)
    assert proc.returncode == 0 and "imported without faiss" in proc.stdout, proc.stderr
    blocked = _python(_NO_FAISS.replace("index.types\n", "index.faiss_index\n"))
    assert "faiss is blocked" in blocked.stderr  # the guard really blocks: the FAISS module fails under it
    default = _python(_FAISS_GUARD + "import tempfile\nfrom index import Catalog\nCatalog(tempfile.mkdtemp())\n")
    assert "faiss is blocked" in default.stderr  # … and choosing the FAISS backend (the default) does load it


def test_a_milvus_catalogue_never_loads_faiss(milvus_server) -> None:
    proc = _python(_MILVUS_CATALOG, f"{milvus_server.uri}/no_faiss")
    assert proc.returncode == 0 and "a Milvus catalogue without faiss" in proc.stdout, proc.stderr


def test_only_the_faiss_module_imports_faiss() -> None:
    users = [str(p.relative_to(ROOT)) for package in PROJECT for p in _modules(package)
             if "faiss" in _imports(p, top_level_only=False)]
    assert users == ["index/faiss_index.py"]


# --- one SQL home -----------------------------------------------------------------------------------
# SQL statements live in the store modules (Session + Dialect); index/filters.py compiles a `where` into a
# parameterised predicate for either dialect (its EXISTS over json_each is part of that predicate).
SQL_HOMES = {"index/store.py", "index/sqlite_store.py", "index/pg_store.py", "index/filters.py"}
_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|UNIQUE|SEQUENCE)"
                  r"|ALTER\s+TABLE|DROP\s+(TABLE|INDEX)|BEGIN\s+IMMEDIATE|PRAGMA\s)", re.S)


def _holds_sql(path: Path) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and _SQL.search(n.value)
               for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def test_no_sql_outside_the_store() -> None:
    with_sql = {str(p.relative_to(ROOT)) for package in sorted(PROJECT | {ENTRY}) for p in _modules(package)
                if _holds_sql(p)}
    assert with_sql - SQL_HOMES == set(), "SQL outside index/store*.py"
    assert _SQL.search("SELECT id FROM items WHERE x = ?") and not _SQL.search("select a model from the list")


# --- private names stay in their package ------------------------------------------------------------
def _private_reaches(path: Path, own: str) -> list[str]:
    """`from other.pkg import _name`, `from other._mod import x` or `import other._mod` in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top == own or top not in PROJECT | {ENTRY}:
                continue
            private = [part for part in module.split(".")[1:] if part.startswith("_") and not part.startswith("__")]
            private += [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                found.append(f"{path.name}: {module} {private}")
    return found


def test_no_private_name_is_imported_across_packages(tmp_path: Path) -> None:
    users = [p for package in sorted(PROJECT | {ENTRY}) for p in _modules(package)] + sorted((ROOT / "bench").glob("*.py"))
    reaches = [r for p in users for r in _private_reaches(p, p.relative_to(ROOT).parts[0])]
    assert reaches == []
    probe = tmp_path / "probe.py"  # the finder finds each form, and lets public names and the own package be
    probe.write_text("from index._validate import metadata_json\nfrom model import _x\nimport app._y\n"
                     "from index import Catalog\nfrom training._z import w\n__all__ = []\n")
    assert [r.split(": ")[1] for r in _private_reaches(probe, "training")] == [
        "index._validate ['_validate']", "model ['_x']", "app._y ['_y']"]
