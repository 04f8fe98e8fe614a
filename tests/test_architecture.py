"""The layout is the architecture: each subpackage imports only from the layers below it, never a private name
of another module.  Any back-edge (``runtime`` importing ``convert``, say) fails here, naming the file and line."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tflite_int8"
# Lower number = lower layer. A module may import its own subpackage and any strictly lower layer.
LAYERS = {
    "errors": 0, "progress": 0,
    "cluster": 1,
    "portable": 1, "config": 2, "data": 3,
    "runtime": 4,
    "convert": 5,
    "verify": 6,
    "recover": 7, "device": 7, "zoo": 7, "testing": 7,
    "cli": 8, "pytest_plugin": 8, "__main__": 9, "__init__": 9,
}


def _unit(module: str) -> str:
    """'tflite_int8.convert.pipeline' -> 'convert'; 'tflite_int8.errors' -> 'errors'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import in the file, module level or inside functions."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tflite_int8"):
                names = [a.name for a in node.names]
                if not node.module:  # from . import x: x is a module
                    out += [(node.lineno, f"{target}.{n}", []) for n in names]
                else:
                    out.append((node.lineno, target, names))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("tflite_int8")]
    return out


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        here = _module_name(path, root)
        unit = _unit(here)
        for line, target, names in _imports(path, root):
            other = _unit(target)
            where = f"{path.relative_to(root.parent)}:{line}"
            if other not in LAYERS or unit not in LAYERS:
                found.append(f"{where}: {unit} -> {other}: a package missing from LAYERS")
            elif other != unit and LAYERS[other] >= LAYERS[unit]:
                found.append(f"{where}: {unit} (layer {LAYERS[unit]}) imports {target} (layer {LAYERS[other]})")
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and target != here:
                found.append(f"{where}: private name(s) {', '.join(private)} imported from {target}")
    return found


def test_no_back_edges_or_private_cross_imports():
    assert violations() == []


def test_portable_stays_numpy_only():
    """arm64-check copies tflite_int8/portable alone onto the device: nothing there may import the rest."""
    for path in (PACKAGE / "portable").glob("*.py"):
        for line, target, _ in _imports(path):
            assert target.startswith("tflite_int8.portable"), f"{path.name}:{line} imports {target}"


@pytest.mark.parametrize("edge", [
    ("runtime/adapter.py", "from ..convert.pipeline import convert\n", "runtime (layer 4) imports "
                                                                       "tflite_int8.convert.pipeline"),
    ("convert/quantize.py", "from ..verify.core import verify\n", "convert (layer 5) imports"),
    ("verify/ladder.py", "from .engines import _helper\n", "private name(s) _helper"),
    ("config/recipe.py", "    from ..data import readers\n", "config (layer 2) imports tflite_int8.data"),
])
def test_a_back_edge_is_caught(tmp_path, edge):
    """The check itself: a copy of the package with one bad import added fails, naming it."""
    import shutil

    copy = tmp_path / "tflite_int8"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    target = copy / edge[0]
    target.write_text(target.read_text() + "\n\ndef _added():\n" + "    " + edge[1].strip() + "\n")
    found = violations(copy)
    assert any(edge[2] in v and edge[0] in v for v in found), found
