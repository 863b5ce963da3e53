"""mm/ is the pure core: standard library only, nothing from the layers above."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MM = Path(__file__).resolve().parents[2] / "mmshell" / "mm"


def test_mm_imports_only_the_standard_library_and_itself() -> None:
    bad = []
    for path in sorted(MM.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:          # relative: must stay inside mm/
                    if node.level > 1:
                        bad.append(f"{path.name}: from {'.' * node.level}{node.module}")
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names:
                    bad.append(f"{path.name}: import {name}")
    assert not bad, bad


def test_mm_does_no_io() -> None:
    for path in sorted(MM.glob("*.py")):
        text = path.read_text()
        for word in ("print(", "open(", "input("):
            assert word not in text, f"{path.name} uses {word}"

