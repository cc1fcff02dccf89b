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
    spans: Mapping[str, Span] = field(default_factory=dict)  # more places the fix needs, by name

    def shifted(self, lines: int) -> FixHint:
        return replace(self, target=self.target.shifted(lines), spans={k: v.shifted(lines) for k, v in self.spans.items()})


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
            fixes=tuple(f.shifted(lines) for f in self.fixes),
            anchor_lines=frozenset(line + lines for line in self.anchor_lines),
        )

    def sort_key(self) -> tuple[int, int, str]:
        return (self.span.start.line, self.span.start.column, self.code)

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-compatible (0-based positions): for caches and other processes."""
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "family": self.family.value,
            "severity": self.severity.value,
            "message": self.message,
            "span": _span_json(self.span),
            "checked": list(self.checked),
            "unverifiable": list(self.unverifiable),
            "related": [{"span": _span_json(r.span), "message": r.message} for r in self.related],
            "fixes": [
                {"kind": f.kind, "title": f.title, "target": _span_json(f.target), "data": dict(f.data),
                 "spans": {k: _span_json(v) for k, v in f.spans.items()}}
                for f in self.fixes
            ],
            "anchor_lines": sorted(self.anchor_lines),
        }
        if self.suppressed_by is not None:
            s = self.suppressed_by
            out["suppressed_by"] = {
                "line": s.line, "codes": list(s.codes), "reason": s.reason, "style": s.style, "span": _span_json(s.span)
            }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        suppression = data.get("suppressed_by")
        return cls(
            code=data["code"],
            name=data["name"],
            family=Family(data["family"]),
            severity=Severity(data["severity"]),
            message=data["message"],
            span=_span_of(data["span"]),
            checked=tuple(data["checked"]),
            unverifiable=tuple(data["unverifiable"]),
            related=tuple(Related(_span_of(r["span"]), r["message"]) for r in data["related"]),
            fixes=tuple(
                FixHint(f["kind"], f["title"], _span_of(f["target"]), f["data"],
                        {k: _span_of(v) for k, v in f.get("spans", {}).items()})
                for f in data["fixes"]
            ),
            anchor_lines=frozenset(data["anchor_lines"]),
            suppressed_by=Suppression(
                suppression["line"], tuple(suppression["codes"]), suppression["reason"], suppression["style"],
                _span_of(suppression["span"]),
            )
            if suppression
            else None,
        )


def _span_json(span: Span) -> list[int]:
    return [span.start.line, span.start.column, span.end.line, span.end.column]


def _span_of(data: list[int]) -> Span:
    return Span.of(*data)


@dataclass(frozen=True)
class TextEdit:
    """Replace ``span`` (code-point columns) with ``new_text``; front ends convert units."""

    span: Span
    new_text: str
