"""The import graph, built from the sources: client and admin are siblings over common.

Every ``import`` and ``from ... import`` counts, including those inside functions (lazy imports
still make a dependency), except under ``if TYPE_CHECKING:`` (never run). Names loaded by
``importlib`` at run time are plugins, not imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "djarchive_common": ROOT / "packages/djarchive-common/src/djarchive_common",
    "djarchive_client": ROOT / "packages/djarchive-client/src/djarchive_client",
    "djarchive_admin": ROOT / "packages/djarchive-admin/src/djarchive_admin",
}


def module_names() -> dict[str, Path]:
    """Every module by its dotted name, those of subpackages (``djarchive_common.manifest.parse``)
    included; a package is its ``__init__.py``."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts[: -1 if parts[-1] == "__init__" else None]))] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """The djarchive modules ``name`` imports (absolute names)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # what only the type checker reads is no dependency at run time
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    modules = module_names()
    return {target for target in found if target in modules and target != name}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in module_names().items()}


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_is_read_from_real_sources():
    edges = graph()
    assert "djarchive_common.catalog" in edges["djarchive_client.archive"]
    assert "djarchive_common.catalog" in edges["djarchive_admin.archive"]
    assert "djarchive_client.fetch" in edges["djarchive_client.schedule"]
    assert "djarchive_common.manifest.entries" in edges["djarchive_common.manifest.parse"]
    assert "djarchive_common.errors" in edges["djarchive_common.signing.statements"]


def test_common_imports_neither_role_and_admin_never_imports_the_client():
    for name, targets in graph().items():
        packages = {top(target) for target in targets}
        if top(name) == "djarchive_common":
            assert packages <= {"djarchive_common"}, (name, targets)
        if top(name) == "djarchive_admin":
            assert "djarchive_client" not in packages, (name, targets)
        if top(name) == "djarchive_client":
            assert "djarchive_admin" not in packages, (name, targets)


def test_no_import_cycle_between_modules():
    edges = graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target] if target in path else [name, target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize(
    "module", ["djarchive_client.parser", "djarchive_admin.parser", "djarchive_common.parser"]
)
def test_parsers_need_only_the_standard_library(module):
    """The parsers are loaded for --help, completion and the man pages: nothing heavy below them."""
    allowed = {
        "djarchive_common.parser",
        "djarchive_common.transfer",
        "djarchive_common.errors",
        "djarchive_common.layout",
    }
    pending, seen = [module], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        path = module_names()[name]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module-level imports: what loading the parser costs
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for imported in names:
                assert top(imported) in sys.stdlib_module_names or imported.startswith("djarchive_"), (
                    name,
                    imported,
                )
        for target in imports_of(name, path):
            if target not in seen and target != top(target):
                assert target in allowed, (name, target)
                pending.append(target)
