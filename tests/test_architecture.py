"""The layers in docs/architecture.md hold in the code: a part imports only parts of lower layers
(and itself), the parts below the page never import Gradio, and only the engine imports the model
libraries. The table is read from the document, so the picture and the test cannot drift apart."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bonsai_ui"
DOC = ROOT / "docs" / "architecture.md"
MODEL_LIBRARIES = ("torch", "transformers", "llama_cpp", "unsloth", "unsloth_zoo", "bitsandbytes", "triton",
                   "peft", "trl")


def layers() -> dict[str, int]:
    """``| 2 | `editor` | ... |`` rows of the document's layer table: part -> layer."""
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`([\w.]+)`", DOC.read_text(), flags=re.MULTILINE)
    assert rows, f"{DOC} has no layer table"
    return {part: int(layer) for layer, part in rows}


def part_of(module: str) -> str:
    """bonsai_ui.editor.runs -> editor; bonsai_ui.app -> app."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def imports(name: str, path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of the file, as absolute names."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]  # from . import x
    return found


def test_the_document_names_every_part():
    parts = {part_of(name) for name, _ in modules() if name != "bonsai_ui"}
    assert parts == set(layers()), "docs/architecture.md's layer table and bonsai_ui/ disagree"


@pytest.mark.parametrize("name, path", modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_go_down_the_layers(name, path):
    table = layers()
    own = part_of(name)
    if not own:
        return
    for target in imports(name, path):
        if not target.startswith("bonsai_ui."):
            continue
        other = part_of(target)
        if other not in table or other == own:
            continue
        assert table[other] < table[own], (f"{name} imports {target}: {other} is on layer "
                                           f"{table[other]}, {own} on {table[own]}")


@pytest.mark.parametrize("name, path", modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_only_the_page_imports_gradio_and_only_the_engine_the_model_libraries(name, path):
    own = part_of(name)
    roots = {target.split(".")[0] for target in imports(name, path)}
    if own not in ("ui", "app"):
        assert "gradio" not in roots and "gradio_client" not in roots, f"{name} imports Gradio"
    if own != "engine":
        assert not roots & set(MODEL_LIBRARIES), f"{name} imports {roots & set(MODEL_LIBRARIES)}"


def test_the_check_sees_a_wrong_way_import(tmp_path):
    """The walk finds a relative import inside a function: what a wrong-way import would look like."""
    bad = tmp_path / "runs.py"
    bad.write_text("def f():\n    from ..ui import page\n")
    assert "bonsai_ui.ui.page" in imports("bonsai_ui.editor.runs", bad)
