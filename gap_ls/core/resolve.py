"""Following a name into another module of the workspace, with jedi, without running any code.

Local analysis knows the functions of the file it reads; a thread target or
an executor job imported from elsewhere is a blank. ``JediResolver`` asks
jedi where a name is defined, reads that module with ``ast`` and summarises
the function found there (does it handle its own errors? never return?).
jedi is not thread-safe: every call goes through one lock, and results are
cached per (definition file, its modification time).
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gap_ls.core.idempotency import Catalogue, EffectModel, FunctionEffects, unit_effects
from gap_ls.core.model import Position
from gap_ls.core.summary import FunctionInfo, summarize


@dataclass(frozen=True)
class ExternalFunction:
    """A function defined in another module, as far as static reading tells."""

    info: FunctionInfo
    path: Path
    module: str

    def describe(self) -> str:
        return f"`{self.module}.{self.info.qualname}` ({self.path.name}:{self.info.line + 1})"


class Resolver(Protocol):
    def resolve_function(self, source: str, path: Path | None, position: Position) -> ExternalFunction | None:
        """The function the name at ``position`` (0-based line, code-point column) refers to."""


class JediResolver:
    def __init__(self, root: Path | None) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._project = None
        self._summaries: dict[tuple[Path, float], dict[int, FunctionInfo]] = {}
        self._effects: dict[tuple[Path, float, Catalogue], EffectModel | None] = {}

    def resolve_function(self, source: str, path: Path | None, position: Position) -> ExternalFunction | None:
        found = self._goto_function(source, path, position)
        if found is None:
            return None
        module_path, line, module = found
        info = self._function_at(module_path, line)
        return ExternalFunction(info, module_path, module) if info is not None else None

    def resolve_effects(
        self, source: str, path: Path | None, position: Position, catalogue: Catalogue
    ) -> tuple[ExternalFunction, FunctionEffects] | None:
        """What the workspace function named at ``position`` does (its side effects, followed
        within its own module), for the idempotency rules. Library code is not read."""
        found = self._goto_function(source, path, position)
        if found is None:
            return None
        module_path, line, module = found
        if self._root is None or "site-packages" in module_path.parts or not module_path.is_relative_to(self._root):
            return None
        info = self._function_at(module_path, line)
        if info is None:
            return None
        with self._lock:
            try:
                key = (module_path, module_path.stat().st_mtime, catalogue)
            except OSError:  # removed since jedi saw it: "unknown", nothing is reported
                return None
            if key not in self._effects:
                self._effects[key] = _effect_model(module_path, catalogue)
            model = self._effects[key]
        if model is None:
            return None
        return ExternalFunction(info, module_path, module), model.of(info.qualname)

    def _goto_function(self, source: str, path: Path | None, position: Position) -> tuple[Path, int, str] | None:
        """Where the function named at ``position`` is defined: (file, 0-based line, module name)."""
        import jedi  # imported on first use: start-up of the CLI and server stays fast

        with self._lock:
            if self._project is None and self._root is not None:
                self._project = jedi.Project(path=self._root, load_unsafe_extensions=False)
            script = jedi.Script(code=source, path=path, project=self._project)
            try:
                names = script.goto(position.line + 1, position.column, follow_imports=True)
            except (ValueError, SyntaxError, RecursionError):  # jedi's own limits: an answer of "unknown"
                return None
            for name in names:
                module_path = name.module_path
                if name.type != "function" or module_path is None or name.line is None:
                    continue
                if path is not None and Path(module_path) == path:
                    continue  # the same file: local analysis already knows it
                return Path(module_path), name.line - 1, name.module_name or Path(module_path).stem
        return None

    def _function_at(self, path: Path, line: int) -> FunctionInfo | None:
        with self._lock:
            return self._read_function_at(path, line)

    def _read_function_at(self, path: Path, line: int) -> FunctionInfo | None:
        try:
            key = (path, path.stat().st_mtime)
            if key not in self._summaries:
                tree = ast.parse(path.read_text(encoding="utf-8"))
                self._summaries[key] = {info.line: info for info in summarize(tree).functions.values()}
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):  # gap: ignore[GAP106] None means "unknown" to every caller, which then reports nothing
            return None
        return self._summaries[key].get(line)


def _effect_model(path: Path, catalogue: Catalogue) -> EffectModel | None:
    """The effects of every function of another module, read with ``ast``; None if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
        summary = summarize(ast.parse(text))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):  # gap: ignore[GAP106] None means "unknown": the caller reports nothing
        return None
    return EffectModel(summary, [unit_effects((), text, summary, catalogue)])
