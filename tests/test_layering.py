"""The analysis core stays free of LSP: gap_ls.core, gap_ls.rules and gap_ls.fixes never import pygls/lsprotocol."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PURE = ("core", "rules", "fixes")
FORBIDDEN = ("pygls", "lsprotocol")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pure_packages_do_not_import_lsp():
    offenders = []
    for package in PURE:
        for path in sorted((ROOT / "gap_ls" / package).rglob("*.py")):
            for name in imported_modules(path):
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_core_does_not_import_the_front_ends():
    offenders = []
    for path in sorted((ROOT / "gap_ls" / "core").rglob("*.py")):
        for name in imported_modules(path):
            if name.startswith(("gap_ls.cli", "gap_ls.server")):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
