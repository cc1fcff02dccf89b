"""Benchmark inputs built from the Python standard library on this machine (nothing third-party
is committed): whole top-level statements of real modules, concatenated up to N lines."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])
MODULES = [
    "argparse.py", "_pydecimal.py", "typing.py", "configparser.py", "subprocess.py", "logging/__init__.py",
    "asyncio/base_events.py", "concurrent/futures/_base.py", "threading.py", "http/client.py", "smtplib.py",
    "tarfile.py", "email/message.py", "inspect.py", "pathlib.py", "shutil.py", "socket.py", "ssl.py",
    "urllib/request.py", "asyncio/tasks.py", "asyncio/streams.py", "logging/handlers.py", "ftplib.py",
    "imaplib.py", "mailbox.py", "pdb.py", "pydoc.py", "difflib.py", "unittest/case.py", "multiprocessing/pool.py",
]


def build(lines: int) -> str:
    """About ``lines`` lines of real code: whole top-level statements, no `from __future__` imports."""
    out: list[str] = []
    for name in MODULES:
        path = STDLIB / name
        if not path.exists():
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        source_lines = source.splitlines(keepends=True)
        for statement in tree.body:
            if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
                continue
            first = min([statement.lineno, *(d.lineno for d in getattr(statement, "decorator_list", []))])
            out.extend(source_lines[first - 1 : statement.end_lineno])
            out.append("\n")
            if len(out) >= lines:
                return "".join(out)
    return "".join(out)


def middle_function_line(text: str) -> int:
    """0-based line inside the body of the function closest to the middle that has a try/except
    (the worst case for gap-ls: its unit is analysed with libcst on every edit)."""
    tree = ast.parse(text)
    middle = len(text.splitlines()) // 2
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(isinstance(n, ast.Try) for n in ast.walk(node)):
            for statement in node.body:
                if isinstance(statement, (ast.Assign, ast.Expr, ast.Return)) and statement.lineno == statement.end_lineno:
                    distance = abs(statement.lineno - middle)
                    if best is None or distance < best[0]:
                        best = (distance, statement.lineno - 1)
                    break
    assert best is not None, "no function with try/except in the generated file"
    return best[1]
