"""The layers import only downward (docs/architecture.md), checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYNC = ROOT / "sync"

#: layer → packages it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sync.api": ("sync.store", "sync.run", "sync.app", "sync.sandbox", "models"),
    "sync.store": ("sync.run", "sync.app", "sync.sandbox"),
    "sync.run": ("sync.app", "sync.sandbox"),
    "sync.config": ("sync.api", "sync.store", "sync.run", "sync.app", "sync.sandbox"),
    "sync.errors": ("sync.api", "sync.store", "sync.run", "sync.app", "sync.sandbox"),
    "sync.redact": ("sync.api", "sync.store", "sync.run", "sync.app", "sync.sandbox"),
    "sync.text": ("sync.api", "sync.store", "sync.run", "sync.app", "sync.sandbox"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, lazily inside functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


SOURCES = sorted(SYNC.rglob("*.py"))


def test_there_are_modules_in_every_layer() -> None:
    """The check sees the four layers and the sandbox (so it cannot pass on an empty tree)."""
    layers = {_module(p).split(".")[1] for p in SOURCES if _module(p).count(".") >= 2}
    assert {"api", "store", "run", "app", "sandbox"} <= layers


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_go_down(path: Path) -> None:
    """No module imports a layer above its own."""
    module = _module(path)
    banned = next((b for layer, b in FORBIDDEN.items() if _under(module, layer)), ())
    bad = sorted(n for n in _imports(path) if any(_under(n, b) for b in banned))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("path", sorted((SYNC / "sandbox").rglob("*.py")), ids=lambda p: p.name)
def test_sandbox_shares_no_code_with_the_client(path: Path) -> None:
    """The sandbox and its oracle import nothing of sync outside sync.sandbox."""
    ours = {n for n in _imports(path) if _under(n, "sync") or _under(n, "models")}
    assert all(_under(n, "sync.sandbox") for n in ours), sorted(ours)


def test_only_wiring_builds_the_client_and_the_pipeline() -> None:
    """FintocClient( and Pipeline( are constructed only in the composition root (in sync/)."""
    builders = {
        str(p.relative_to(ROOT))
        for p in SOURCES
        if ("FintocClient(" in p.read_text() and "class FintocClient" not in p.read_text())
        or ("Pipeline(" in p.read_text() and "class Pipeline" not in p.read_text())
    }
    assert builders == {"sync/app/wiring.py"}
