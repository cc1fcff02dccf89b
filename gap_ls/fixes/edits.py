"""Turning a libcst transform of one unit into text edits for the whole file.

A fix parses only the unit (top-level statement or class member) that holds
its target, transforms it with libcst (so formatting and comments survive),
splices the new unit into the file, adds module-level imports and helpers
after the file's leading imports, checks that the result compiles, and
returns a minimal line diff as TextEdits. Pure: no LSP types.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import CodeRange

from gap_ls.core.model import Position, Span, TextEdit
from gap_ls.core.nodes import node_positions
from gap_ls.core.source import MEMBER_HEADER, SourceSyntaxError, Unit, first_line, parse_module, split_lines
from gap_ls.core.summary import ModuleSummary, summarize


class FixNotApplicable(ValueError):
    """The fix cannot be built for this code (the target moved, or the result would not compile)."""


@dataclass
class UnitTree:
    """One unit of a file, parsed with libcst, with positions in file coordinates."""

    lines: list[str]
    summary: ModuleSummary
    unit: Unit
    module: cst.Module
    positions: Mapping[cst.CSTNode, CodeRange]
    insertion_line: Callable[[], int]  # where module-level imports and helpers go

    def span_of(self, node: cst.CSTNode) -> Span:
        code_range = self.positions[node]
        offset = self.unit.line_offset()
        return Span(
            Position(code_range.start.line - 1 + offset, code_range.start.column),
            Position(code_range.end.line - 1 + offset, code_range.end.column),
        )

    def find(self, target: Span, kinds: tuple[type, ...]) -> cst.CSTNode:
        """The node of one of ``kinds`` at ``target`` (file coordinates).

        Exact span first; then the innermost node starting where ``target`` starts
        (a header-only span); then the first one further along the same line (the
        construct after a fix moved it right, e.g. `task = <call>`).
        """
        candidates = [(self.span_of(node), node) for node in self.positions if isinstance(node, kinds)]
        for span, node in candidates:
            if span == target:
                return node
        starting = [(span, node) for span, node in candidates if span.start == target.start]
        if starting:
            return min(starting, key=lambda item: (item[0].end.line, item[0].end.column))[1]
        later = [
            (span, node)
            for span, node in candidates
            if span.start.line == target.start.line and span.start.column > target.start.column
        ]
        if later:
            return min(later, key=lambda item: (item[0].start.column, -item[0].end.line, -item[0].end.column))[1]
        where = f"{target.start.line + 1}:{target.start.column + 1}"
        raise FixNotApplicable(f"no {'/'.join(k.__name__ for k in kinds)} at {where} any more")

    def qualify(self, dotted: str) -> str:
        return self.summary.qualify(dotted)


@dataclass(frozen=True)
class FixContext:
    """What an analysis already knows about the file: its units and summary. With it a fix
    parses only its unit (the editor's case); without it the file is parsed with ``ast``."""

    units: tuple[Unit, ...]
    summary: ModuleSummary


def load_unit(text: str, line: int, context: FixContext | None = None) -> UnitTree:
    lines = split_lines(text)
    if context is None:
        try:
            parsed = parse_module(text)
        except SourceSyntaxError as exc:
            raise FixNotApplicable(f"the file does not parse: {exc.message}") from None
        context = FixContext(parsed.units, summarize(parsed.tree, tuple((u.class_path, u.text) for u in parsed.units)))
    unit = next((u for u in context.units if u.start <= line <= u.end), None)
    if unit is None:
        raise FixNotApplicable(f"line {line + 1} is not inside a statement")
    module = cst.parse_module(unit.parse_text())
    positions = node_positions(module)
    units = context.units
    return UnitTree(lines, context.summary, unit, module, positions, lambda: _insertion_line(units))


@dataclass
class ModuleAdditions:
    """What a fix needs outside the unit it rewrites: imports and helper definitions at module
    level, and statements at the start of a class's `__init__` (each added once)."""

    imports: list[str] = field(default_factory=list)  # module names: "logging", "asyncio"
    helpers: list[tuple[str, str]] = field(default_factory=list)  # (name, source of the definition)
    from_imports: list[tuple[str, str]] = field(default_factory=list)  # ("django.db", "transaction")
    init_lines: list[tuple[str, str, str]] = field(default_factory=list)  # (class, statement, class-level fallback)

    def need_import(self, module: str) -> None:
        if module not in self.imports:
            self.imports.append(module)

    def need_from_import(self, module: str, name: str) -> None:
        if (module, name) not in self.from_imports:
            self.from_imports.append((module, name))

    def need_init_line(self, class_name: str, statement: str, fallback: str) -> None:
        """``statement`` (e.g. `self._lock = threading.Lock()`) at the start of ``class_name``'s
        `__init__`; a class without one gets ``fallback`` as a class attribute instead."""
        if all(entry[0] != class_name or entry[1] != statement for entry in self.init_lines):
            self.init_lines.append((class_name, statement, fallback))

    def empty(self) -> bool:
        return not (self.imports or self.helpers or self.from_imports or self.init_lines)

    def need_helper(self, name: str, source: str) -> None:
        if all(existing != name for existing, _ in self.helpers):
            self.helpers.append((name, source))


def module_alias(summary: ModuleSummary, module: str) -> str | None:
    """The name under which ``module`` is imported in this file, if it is (`import asyncio as aio`)."""
    for alias, qualified in summary.imports.items():
        if qualified == module:
            return alias
    return None


Transform = Callable[[UnitTree, ModuleAdditions], cst.Module]


def fix_unit(text: str, line: int, transform: Transform, context: FixContext | None = None) -> list[TextEdit]:
    """Apply ``transform`` to the unit containing ``line``; the edits, [] if nothing changes."""
    tree = load_unit(text, line, context)
    additions = ModuleAdditions()
    new_module = transform(tree, additions)
    if new_module.deep_equals(tree.module) and additions.empty():
        return []
    new_unit = new_module.code
    if tree.unit.is_member:
        new_unit = new_unit.removeprefix(MEMBER_HEADER)
    lines = tree.lines
    before = "".join(lines[: tree.unit.start])
    after = "".join(lines[tree.unit.end + 1 :])
    if not tree.unit.text.endswith(("\n", "\r")):
        new_unit = new_unit.rstrip("\r\n")
    new_text = before + new_unit + after
    new_text = _add_init_lines(new_text, additions)
    new_text = _add_module_level(new_text, tree, additions)
    if new_text == text:
        return []
    if len(lines) <= WHOLE_FILE_CHECK_LINES:
        check_compiles(new_text)
    else:
        # Big files: the rest of the file is unchanged, so the new unit (and what was added at
        # module level) compiling is what can go wrong.
        check_compiles((MEMBER_HEADER if tree.unit.is_member else "") + new_unit)
        check_compiles(_added_block(additions, tree))
    return line_edits(text, new_text)


WHOLE_FILE_CHECK_LINES = 3000


def _added_block(additions: ModuleAdditions, tree: UnitTree) -> str:
    imports = [f"import {m}\n" for m in additions.imports]
    imports += [f"from {m} import {n}\n" for m, n in additions.from_imports]
    helpers = [source for name, source in additions.helpers if name not in tree.summary.defined]
    return "".join(imports) + "\n".join(helpers)


def _add_module_level(text: str, tree: UnitTree, additions: ModuleAdditions) -> str:
    imports = [m for m in additions.imports if module_alias(tree.summary, m) is None]
    from_imports = [(m, n) for m, n in additions.from_imports if tree.summary.imports.get(n) != f"{m}.{n}"]
    helpers = [(name, source) for name, source in additions.helpers if name not in tree.summary.defined]
    if not imports and not helpers and not from_imports:
        return text
    lines = split_lines(text)
    at = tree.insertion_line()
    newline = _newline_of(lines)
    block = [f"import {module}{newline}" for module in imports]
    block += [f"from {module} import {name}{newline}" for module, name in from_imports]
    for _, source in helpers:
        block += [newline, newline] + [line + newline for line in source.strip("\n").split("\n")]
    if at < len(lines) and lines[at].strip():
        block += [newline, newline] if helpers or at == 0 else [newline]
    return "".join(lines[:at] + block + lines[at:])


def _add_init_lines(text: str, additions: ModuleAdditions) -> str:
    """Put each (class, statement) at the start of the class's `__init__` (after its docstring
    and a `super().__init__(...)` call), or the fallback at the start of the class body."""
    for class_name, statement, fallback in additions.init_lines:
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            raise FixNotApplicable(f"the fixed file does not parse: {exc.msg}") from None
        cls = _find_class(tree.body, class_name.split("."))
        if cls is None:
            raise FixNotApplicable(f"class {class_name} not found")
        init = next((n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"), None)
        body, line = (init.body, statement) if init is not None else (cls.body, fallback)
        code = line.split("  #")[0]
        if any(ast.get_source_segment(text, node) == code for node in body):
            continue  # already there
        text = _insert_statement(text, body, _preamble_length(body), line)
    return text


def _find_class(body: list[ast.stmt], path: list[str]) -> ast.ClassDef | None:
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == path[0]:
            return node if len(path) == 1 else _find_class(node.body, path[1:])
    return None


def _preamble_length(body: list[ast.stmt]) -> int:
    """Statements that stay first: a docstring, then a `super().__init__(...)` call."""
    index = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        index = 1
    if index < len(body) and isinstance(body[index], ast.Expr) and isinstance(body[index].value, ast.Call):
        func = body[index].value.func
        if isinstance(func, ast.Attribute) and func.attr == "__init__" and "super" in ast.unparse(func.value):
            index += 1
    return index


def _insert_statement(text: str, body: list[ast.stmt], index: int, statement: str) -> str:
    """``statement`` inserted as ``body[index]`` (at the end when index == len(body))."""
    lines = split_lines(text)
    newline = _newline_of(lines)
    if index < len(body):
        anchor = body[index]
        at = first_line(anchor) - 1
    else:
        anchor = body[-1]
        at = anchor.end_lineno or anchor.lineno
    indent = lines[anchor.lineno - 1][: anchor.col_offset]
    return "".join(lines[:at] + [f"{indent}{statement}{newline}"] + lines[at:])


def _insertion_line(units: tuple[Unit, ...]) -> int:
    """0-based line after the module docstring, `__future__` imports and the leading imports."""
    at = 0
    for index, unit in enumerate(units):
        if unit.class_path:
            break
        try:
            statements = ast.parse(unit.text).body
        except (SyntaxError, ValueError):
            break
        if not statements or not all(_is_header_statement(s, index == 0 and i == 0) for i, s in enumerate(statements)):
            break
        at = unit.start + max(s.end_lineno or s.lineno for s in statements)
    return at


def _is_header_statement(statement: ast.stmt, may_be_docstring: bool) -> bool:
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return True
    if may_be_docstring and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return isinstance(statement.value.value, str)
    # try: import x / except ImportError: ...
    return isinstance(statement, ast.Try) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in statement.body)


def _newline_of(lines: list[str]) -> str:
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
        if line.endswith("\n"):
            return "\n"
    return "\n"


def check_compiles(text: str) -> None:
    try:
        compile(text, "<gap-ls fix>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise FixNotApplicable(f"the fixed code would not compile: {exc}") from None


def line_edits(old: str, new: str) -> list[TextEdit]:
    """Minimal whole-line replacements turning ``old`` into ``new``."""
    old_lines = split_lines(old)
    new_lines = split_lines(new)
    edits = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(TextEdit(Span(_line_start(old_lines, i1), _line_start(old_lines, i2)), "".join(new_lines[j1:j2])))
    return edits


def _line_start(lines: list[str], index: int) -> Position:
    if index < len(lines) or not lines:
        return Position(index, 0)
    last = lines[-1]
    if last.endswith(("\n", "\r")):
        return Position(len(lines), 0)
    return Position(len(lines) - 1, len(last))


def apply_edits(text: str, edits: Iterable[TextEdit]) -> str:
    """Apply code-point edits (used by tests and by the CLI's future --fix)."""
    lines = split_lines(text)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: Position) -> int:
        if position.line >= len(lines):
            return len(text)
        return offsets[position.line] + position.column

    result = text
    for edit in sorted(edits, key=lambda e: (e.span.start, e.span.end), reverse=True):
        result = result[: offset(edit.span.start)] + edit.new_text + result[offset(edit.span.end) :]
    return result


def todo(message: str) -> cst.Comment:
    return cst.Comment(f"# TODO(gap-ls): {message}")


def with_trailing_todo(statement: cst.SimpleStatementLine, message: str) -> cst.SimpleStatementLine:
    return statement.with_changes(
        trailing_whitespace=cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=todo(message))
    )
