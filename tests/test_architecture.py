"""The package's layers: every import points down (course/app -> detector -> package root)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lcnn"
# What each layer may import from lcnn (besides itself). The course and the application are
# side by side on top: neither imports the other.
ALLOWED = {
    "root": {"root"},
    "detector": {"root", "detector"},
    "app": {"root", "detector", "app"},
    "course": {"root", "detector", "course"},
}


def layer(module: str) -> str:
    """'lcnn.detector.train' -> 'detector'; 'lcnn.config' and 'lcnn' -> 'root'.

    `python -m lcnn` (lcnn/__main__.py) is the command line's entry point: the app layer."""
    if module == "lcnn.__main__":
        return "app"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "root"


def lcnn_imports(path: Path) -> set[str]:
    """Every lcnn module a file imports, at any depth of the file (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lcnn"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "lcnn":
                # `from lcnn import course` imports the module lcnn.course
                found |= {f"{node.module}.{a.name}" if node.module == "lcnn" else node.module
                          for a in node.names}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    here = layer(".".join(p for p in rel.parts if p != "__init__"))
    wrong = sorted(m for m in lcnn_imports(path) if layer(m) not in ALLOWED[here])
    assert not wrong, f"{rel} ({here}) imports {wrong}"


def test_layer_detects_a_wrong_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from lcnn.course import plots\n")
    assert {layer(m) for m in lcnn_imports(bad)} == {"course"}
    assert "course" not in ALLOWED["detector"]
