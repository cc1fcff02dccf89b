"""Source text: decoding bytes, splitting lines, and cutting a module into units.

A *unit* is a top-level statement, or a statement in the body of a class
(recursively for nested classes): the piece of a file that rules analyse on
its own against the module summary. Units are found with the standard
library's ``ast`` (C-fast) so that libcst, which is accurate but slow, only
ever parses the units a rule is interested in.

This module must stay free of rule logic and of LSP types.
"""

from __future__ import annotations

import ast
import codecs
import io
import re
import sys
import tokenize
from dataclasses import dataclass

# Python ends lines at \n, \r\n and \r only; str.splitlines() also splits at
# form feeds and Unicode separators, which would shift every later line number.
_LINE_END = re.compile(r"\r\n|\r|\n")

# Wrapping a class member in this header lets libcst parse it with its
# original indentation (multi-line strings make dedenting unsafe).
MEMBER_HEADER = "class _:\n"


class SourceDecodeError(ValueError):
    """The bytes are not text in the encoding the file declares (UTF-8 by default)."""


def decode_source(data: bytes) -> str:
    """Decode Python source bytes the way the interpreter does (BOM, PEP 263 cookie)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "missing encoding declaration" not in str(exc):
            raise SourceDecodeError(str(exc)) from exc
        encoding = "utf-8"  # no cookie and the first lines are not UTF-8: say where below
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceDecodeError(
            f"not valid {codecs.lookup(encoding).name} (byte 0x{bad} on line {line}); "
            "declare the encoding with a coding comment or save the file as UTF-8"
        ) from exc
    return text.removeprefix("\ufeff")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split where Python's tokenizer splits them."""
    lines: list[str] = []
    start = 0
    for match in _LINE_END.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


@dataclass(frozen=True)
class Unit:
    """A statement (or a run of statements sharing lines) analysed as one piece.

    ``start``/``end`` are 0-based, inclusive line numbers in the file;
    ``class_path`` names the enclosing classes of a class member.
    """

    start: int
    end: int
    class_path: tuple[str, ...]
    text: str
    nodes: tuple[ast.stmt, ...]

    @property
    def is_member(self) -> bool:
        return bool(self.class_path)

    def parse_text(self) -> str:
        """Text libcst can parse as a module (members keep their indentation)."""
        text = self.text if self.text.endswith(("\n", "\r")) else self.text + "\n"
        return MEMBER_HEADER + text if self.is_member else text

    def line_offset(self) -> int:
        """Add to a 0-based line of ``parse_text()`` to get the line in the file."""
        return self.start - 1 if self.is_member else self.start


@dataclass(frozen=True)
class ParsedModule:
    text: str
    lines: list[str]
    tree: ast.Module
    units: tuple[Unit, ...]


class SourceSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line  # 0-based
        self.column = column  # 0-based


def parse_module(text: str) -> ParsedModule:
    """Parse ``text`` with ``ast`` and cut it into units; SourceSyntaxError if it does not parse."""
    tree = _parse_ast(text)
    lines = split_lines(text)
    units = tuple(_units_of(tree.body, lines, ()))
    return ParsedModule(text=text, lines=lines, tree=tree, units=units)


# A block ends where the next line starts at column 0 with code (not a comment): every
# top-level statement starts so, and segment boundaries are among these lines, so blanking
# a broken block never crosses into the next segment.
_BLOCK_START = re.compile(r"[^\s#]")
_DETECTED_AT = re.compile(r" \(detected at line \d+\)")
_ON_LINE = re.compile(r"(\bline )(\d+)")


def blank_statement_at(lines: list[str], line: int) -> list[str] | None:
    """Blank the top-level block around ``line``: from the nearest statement start at column 0
    above it to the next one below it."""
    if not lines:
        return None
    line = min(line, len(lines) - 1)
    start = line
    while start > 0 and not _starts_top_level(lines[start]):
        start -= 1
    while start > 0 and lines[start - 1].startswith("@"):
        start -= 1  # a stray decorator: the error shows on the line after it
    end = line + 1
    while end < len(lines) and not _starts_top_level(lines[end]):
        end += 1
    if all(not lines[i].strip() for i in range(start, end)):
        return None  # nothing left to blank: recovery cannot make progress
    blank = [_line_ending(lines[i]) for i in range(start, end)]
    return lines[:start] + blank + lines[end:]


def _starts_top_level(line: str) -> bool:
    return bool(_BLOCK_START.match(line))


def _line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)


def syntax_error_of(exc: BaseException, line_shift: int = 0, text_shift: int | None = None) -> SourceSyntaxError:
    """A parse failure of ``ast.parse`` as a SourceSyntaxError (0-based line + ``line_shift``).

    ``text_shift`` corrects line numbers quoted in the message ("... on line 5") when the
    parsed text was a slice of the file starting at that line (default: ``line_shift``).
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if isinstance(exc, SyntaxError):
        line = max((exc.lineno or 1) - 1, 0) + line_shift
        column = max((exc.offset or 1) - 1, 0)
        # "(detected at line N)" depends on how much text followed; the error is where it starts.
        message = _DETECTED_AT.sub("", str(exc.msg))
        shift = line_shift if text_shift is None else text_shift
        if shift:
            message = _ON_LINE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + shift}", message)
        return SourceSyntaxError(f"{message} (Python {version} grammar)", line, column)
    if isinstance(exc, ValueError):  # null bytes: ValueError on 3.11, SyntaxError later
        return SourceSyntaxError(f"{exc} (Python {version})", line_shift, 0)
    return SourceSyntaxError("too deeply nested to analyse", line_shift, 0)


def _parse_ast(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except PARSE_ERRORS as exc:
        raise syntax_error_of(exc) from None


def first_line(node: ast.stmt) -> int:
    """1-based first line of a statement, decorators included."""
    decorators = getattr(node, "decorator_list", None) or ()
    return min([node.lineno, *(d.lineno for d in decorators)])


def groups(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Statements that share a line (``a = 1; b = 2``) must stay in one unit."""
    groups: list[list[ast.stmt]] = []
    last_end = -1
    for stmt in body:
        if groups and first_line(stmt) <= last_end:
            groups[-1].append(stmt)
        else:
            groups.append([stmt])
        last_end = max(last_end, stmt.end_lineno or stmt.lineno)
    return groups


def header_end(cls: ast.ClassDef) -> int:
    parts = [*cls.bases, *(k.value for k in cls.keywords)]
    return max([cls.lineno, *((p.end_lineno or p.lineno) for p in parts)])


def splittable(cls: ast.ClassDef) -> bool:
    return bool(cls.body) and first_line(cls.body[0]) > header_end(cls)


def _units_of(body: list[ast.stmt], lines: list[str], class_path: tuple[str, ...]):
    for group in groups(body):
        head = group[0]
        if len(group) == 1 and isinstance(head, ast.ClassDef) and splittable(head):
            yield from _units_of(head.body, lines, (*class_path, head.name))
            continue
        start = first_line(head) - 1
        end = max((s.end_lineno or s.lineno) for s in group) - 1
        text = "".join(lines[start : end + 1])
        yield Unit(start=start, end=end, class_path=class_path, text=text, nodes=tuple(group))
