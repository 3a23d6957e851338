"""Layering meta-tests: the synchronous imaging layer depends only downwards, and plugins
are resolved in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGING = REPO / "thumbor_py" / "imaging"
SHIPPED = [REPO / "thumbor_py", REPO / "loaders", REPO / "result_storages"]
# What imaging may not use: it is handed values and built objects instead.
UPWARD = {
    "thumbor_py.metrics",
    "thumbor_py.results",
    "thumbor_py.negotiation",
    "thumbor_py.plugins",
}
RESOLVERS = {"create_plugin", "build_plugin", "resolve_class", "import_object"}
RESOLVING_MODULES = {"thumbor_py/plugins.py", "thumbor_py/assembly.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize(
    "path", sorted(IMAGING.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_imaging_does_not_import_upwards(path: Path) -> None:
    assert not _imports(path) & UPWARD


def _shipped_files() -> list[Path]:
    return sorted(path for root in SHIPPED for path in root.rglob("*.py"))


def test_plugins_are_resolved_only_by_the_assembly() -> None:
    resolving = set()
    for path in _shipped_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        if used & RESOLVERS:
            resolving.add(str(path.relative_to(REPO)))
    assert resolving <= RESOLVING_MODULES


def test_importing_the_imaging_formats_leaves_pillow_alone() -> None:
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; "
        "import thumbor_py.imaging.transform, thumbor_py.metrics, sys; "
        "assert Image.MAX_IMAGE_PIXELS == before; "
        "assert 'prometheus_client' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
