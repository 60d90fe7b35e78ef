"""The package's layers: every import runs down the stack (CLI -> ... -> models -> core), and no file is in a circle.

Read off the source with ``ast`` (imports inside functions count too), so a lazy import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenetv2"

# Bottom to top. A module may import its own top-level package and anything on a lower line, nothing on its own line
# or above. The README's "Project layout" draws the same stack.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("io", "extras", "timing", "console", "hardware", "spec"),
    ("reporting", "distributed"),
    ("models", "data"),
    ("weights", "analysis"),
    ("tasks",),
    ("backends",),
    ("formats",),
    ("export",),
    ("training", "inference"),
    ("evaluation",),
    ("benchmarking", "tuning"),
    ("serving",),
    ("cli",),
    ("__init__", "__main__"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Arrows the ranks would allow but the design does not: weights are read and written without decoding images (the
# vocabulary they share with data/, Preprocessing, lives in the leaf spec.py); data/ and models/ share only spec.py.
FORBIDDEN = {("weights", "data"): "weights read tensors and metadata; images are the job of data (Preprocessing is in spec)",
             ("data", "models"): "data and models meet only in spec (Preprocessing, validators)"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every ``mobilenetv2...`` module that ``path`` imports, at any depth of the file (``package``: where submodules are)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mobilenetv2"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mobilenetv2") and not node.level:
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (package.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (package.parent / sub.replace(".", "/")).is_dir() else node.module)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def source_files(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the ``mobilenetv2...`` modules it imports, for every source file under ``package``."""
    return {module: imported_modules(path, package) for module, path in source_files(package).items()}


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` that draw an arrow of FORBIDDEN, whatever the ranks say."""
    arrows = [(module, target, (layer_of(module), layer_of(target))) for module, targets in sorted(graph.items())
              for target in sorted(targets)]
    return [f"{module} ({pair[0]}) imports {target} ({pair[1]}): {FORBIDDEN[pair]}" for module, target, pair in arrows
            if pair in FORBIDDEN]


def test_every_package_has_a_layer():
    missing = sorted({layer_of(m) for m in source_files()} - set(RANK))
    assert not missing, f"add these to LAYERS (and to the README's project layout): {missing}"


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` that reach the importer's own line of LAYERS or a line above it."""
    upward = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if there != here and RANK[there] >= RANK[here]:
                upward.append(f"{module} ({here}) imports {target} ({there})")
    return upward


def test_imports_run_down_the_layers():
    upward = upward_arrows(import_graph()) + forbidden_arrows(import_graph())
    assert not upward, "imports that do not run down the layers:\n" + "\n".join(upward)


def test_no_import_circles():
    files = source_files()
    graph = {m: {t for t in imported_modules(p) if t in files and t != m} for m, p in files.items()}
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or around a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_the_forbidden_arrows_stay_forbidden():
    arrows = forbidden_arrows(import_graph())
    assert not arrows, "imports the design refuses:\n" + "\n".join(arrows)


def test_the_checker_reports_a_forbidden_arrow(tmp_path):
    package = tmp_path / "mobilenetv2"
    for name, source in {"__init__.py": "", "data/__init__.py": "", "data/folders.py": "from mobilenetv2.models import create\n",
                         "weights/__init__.py": "", "weights/load.py": "def f():\n    import mobilenetv2.data.folders\n",
                         "models/__init__.py": "def create():\n    pass\n"}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)
    arrows = forbidden_arrows(import_graph(package))
    assert [a.split(":")[0] for a in arrows] == ["mobilenetv2.data.folders (data) imports mobilenetv2.models (models)",
                                                 "mobilenetv2.weights.load (weights) imports mobilenetv2.data.folders (data)"]


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "mod.py"
    bad.write_text("def f():\n    from mobilenetv2.cli.common import print_json\n")
    assert "mobilenetv2.cli.common" in imported_modules(bad)
    assert upward_arrows({"mobilenetv2.models.mobilenet": {"mobilenetv2.cli.common", "mobilenetv2.spec"}}) == [
        "mobilenetv2.models.mobilenet (models) imports mobilenetv2.cli.common (cli)"]
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) in ([["a", "b"], ["c"]], [["c"], ["a", "b"]])
