"""Fix "Suppress with a reason" (every rule): `# gap: ignore[CODE] <reason>` on the flagged line.

Adds the code to an existing `# gap: ignore[...]` on that line, or appends a
new comment whose reason is a clear placeholder. A comment cannot be added
at the end of a line that continues (a backslash, or an open string): the
result must parse to the same program, or the fix is not offered.
"""

from __future__ import annotations

import ast
import re

from gap_ls.core.model import Finding, Position, Span, TextEdit
from gap_ls.core.source import split_lines
from gap_ls.fixes.edits import FixNotApplicable

PLACEHOLDER = "TODO(gap-ls): say why this is safe"
_EXISTING = re.compile(r"(?<!\S)#\s*gap:\s*ignore\[(?P<codes>[^\]]*)\]")


def suppress(text: str, finding: Finding) -> list[TextEdit]:
    lines = split_lines(text)
    line_number = finding.span.start.line
    if line_number >= len(lines):
        raise FixNotApplicable("the flagged line is gone")
    line = lines[line_number]
    content = line.rstrip("\r\n")
    existing = _EXISTING.search(content)
    if existing is not None:
        codes = [c.strip() for c in existing.group("codes").split(",") if c.strip()]
        if finding.code in codes:
            return []
        start = existing.start("codes")
        span = Span(Position(line_number, start), Position(line_number, existing.end("codes")))
        edit = TextEdit(span, ", ".join([*codes, finding.code]))
    else:
        end = len(content)
        edit = TextEdit(
            Span(Position(line_number, end), Position(line_number, end)),
            f"  # gap: ignore[{finding.code}] {PLACEHOLDER}",
        )
    _check_same_program(text, lines, line_number, edit)
    return [edit]


def _check_same_program(text: str, lines: list[str], line_number: int, edit: TextEdit) -> None:
    line = lines[line_number]
    new_line = line[: edit.span.start.column] + edit.new_text + line[edit.span.end.column :]
    new_text = "".join(lines[:line_number] + [new_line] + lines[line_number + 1 :])
    try:
        same = ast.dump(ast.parse(new_text)) == ast.dump(ast.parse(text))
    except (SyntaxError, ValueError):
        same = False
    if not same:
        raise FixNotApplicable("a comment cannot go at the end of this line (it continues)")
