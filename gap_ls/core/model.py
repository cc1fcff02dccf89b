"""The findings model: what a rule reports and what every front end consumes.

Everything here is a frozen dataclass or an enum with no behaviour beyond
conversion helpers, so findings can be cached, compared, hashed and sent to
another thread or process. Positions are 0-based lines and 0-based columns in
Unicode code points; the CLI adds 1 for humans, the server converts to the
client's encoding. Nothing here knows about LSP.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(value.lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r} (expected one of: {names})") from None


class Family(str, enum.Enum):
    META = "meta"
    SWALLOWED_ERROR = "swallowed-error"
    RACE = "race"
    IDEMPOTENCY = "idempotency"


@dataclass(frozen=True, order=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True, order=True)
class Span:
    start: Position
    end: Position

    @classmethod
    def of(cls, start_line: int, start_col: int, end_line: int, end_col: int) -> Span:
        return cls(Position(start_line, start_col), Position(end_line, end_col))

    def shifted(self, lines: int) -> Span:
        return Span(
            Position(self.start.line + lines, self.start.column),
            Position(self.end.line + lines, self.end.column),
        )

    def contains_line(self, line: int) -> bool:
        return self.start.line <= line <= self.end.line

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "start": {"line": self.start.line, "column": self.start.column},
            "end": {"line": self.end.line, "column": self.end.column},
        }


@dataclass(frozen=True)
class Related:
    """The other end of a pattern: the retry decorator, the lock not held, the return."""

    span: Span
    message: str


@dataclass(frozen=True)
class FixHint:
    """What a code action needs to rebuild the edit later, without the original tree.

    ``kind`` names a fix in ``gap_ls.fixes``; ``target`` is the span of the whole
    construct the fix rewrites (the handler, the loop, the call); ``data`` holds
    small JSON-compatible facts the rule already established (caught types, log
    call, candidate narrow exceptions).
    """

    kind: str
    title: str
    target: Span
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suppression:
    """An inline comment that silences findings on one line."""

    line: int
    codes: tuple[str, ...]
    reason: str
    style: str  # "gap" (our own directive) or "noqa" (read for familiarity, never written)
    span: Span


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    family: Family
    severity: Severity
    message: str
    span: Span
    checked: tuple[str, ...] = ()
    unverifiable: tuple[str, ...] = ()
    related: tuple[Related, ...] = ()
    fixes: tuple[FixHint, ...] = ()
    # Lines on which a suppression comment silences this finding: the flagged
    # line(s) and the first line of the construct (e.g. the `for` of a loop).
    anchor_lines: frozenset[int] = frozenset()
    suppressed_by: Suppression | None = None

    def suppression_lines(self) -> frozenset[int]:
        return self.anchor_lines | {self.span.start.line}

    def shifted(self, lines: int) -> Finding:
        """The same finding moved down by ``lines`` (for analyses of a slice of a file)."""
        return replace(
            self,
            span=self.span.shifted(lines),
            related=tuple(Related(r.span.shifted(lines), r.message) for r in self.related),
            fixes=tuple(replace(f, target=f.target.shifted(lines)) for f in self.fixes),
            anchor_lines=frozenset(line + lines for line in self.anchor_lines),
        )

    def sort_key(self) -> tuple[int, int, str]:
        return (self.span.start.line, self.span.start.column, self.code)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict with 0-based positions (front ends convert)."""
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "family": self.family.value,
            "severity": self.severity.value,
            "message": self.message,
            "range": self.span.to_dict(),
            "checked": list(self.checked),
            "unverifiable": list(self.unverifiable),
            "related": [{"range": r.span.to_dict(), "message": r.message} for r in self.related],
            "fixes": [
                {"kind": f.kind, "title": f.title, "target": f.target.to_dict(), "data": dict(f.data)}
                for f in self.fixes
            ],
        }
        if self.suppressed_by is not None:
            out["suppressed"] = {"style": self.suppressed_by.style, "reason": self.suppressed_by.reason}
        return out


@dataclass(frozen=True)
class TextEdit:
    """Replace ``span`` (code-point columns) with ``new_text``; front ends convert units."""

    span: Span
    new_text: str
