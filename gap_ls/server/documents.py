"""Open documents as the server sees them: text kept as lines, edits applied incrementally.

The server keeps its own document store instead of pygls's workspace copy:
lines are split the way Python and LSP split them (\\n, \\r\\n, \\r — not at
form feeds or U+2028 as str.splitlines does), and positions are converted
between code points (what the core uses) and the client's negotiated units
(UTF-8, UTF-16 or UTF-32) here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types

from gap_ls.core.model import Position, Span
from gap_ls.core.source import split_lines


class Encoding:
    """Column conversion between code points and the client's position encoding."""

    def __init__(self, kind: str | None) -> None:
        self.kind = str(kind or types.PositionEncodingKind.Utf16)

    def units(self, char: str) -> int:
        if self.kind == types.PositionEncodingKind.Utf8:
            return len(char.encode("utf-8", "surrogatepass"))
        if self.kind == types.PositionEncodingKind.Utf32:
            return 1
        return 2 if ord(char) > 0xFFFF else 1

    def to_client(self, line: str, column: int) -> int:
        prefix = line[:column]
        if prefix.isascii() or self.kind == types.PositionEncodingKind.Utf32:
            return len(prefix)
        return sum(self.units(char) for char in prefix)

    def from_client(self, line: str, character: int) -> int:
        text = line.rstrip("\r\n")
        if text.isascii() or self.kind == types.PositionEncodingKind.Utf32:
            return min(character, len(text))
        consumed = 0
        for index, char in enumerate(text):
            if consumed >= character:
                return index
            consumed += self.units(char)
        return len(text)


@dataclass
class Document:
    uri: str
    version: int
    lines: list[str]
    path: Path | None = None
    language_id: str = "python"
    _text: str | None = field(default=None, repr=False)

    @classmethod
    def open(cls, uri: str, version: int, text: str, path: Path | None, language_id: str = "python") -> Document:
        return cls(uri=uri, version=version, lines=split_lines(text), path=path, language_id=language_id, _text=text)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.lines)
        return self._text

    def apply(self, change: types.TextDocumentContentChangeEvent, encoding: Encoding) -> None:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            self.lines = split_lines(change.text)
            self._text = change.text
            return
        start = server_position(self.lines, change.range.start, encoding)
        end = server_position(self.lines, change.range.end, encoding)
        self._replace(start, end, change.text)

    def _replace(self, start: Position, end: Position, text: str) -> None:
        lines = self.lines
        head = lines[start.line][: start.column] if start.line < len(lines) else ""
        last = min(end.line, len(lines) - 1)
        tail = lines[end.line][end.column :] if end.line < len(lines) else ""
        region = head + text + tail
        stop = last + 1 if end.line < len(lines) else len(lines)
        if region.endswith("\r") and stop < len(lines) and lines[stop].startswith("\n"):
            region += lines[stop]  # "\r" + "\n" across the seam is one line ending
            stop += 1
        lines[start.line : stop] = split_lines(region)
        self._text = None

def client_range(lines: list[str], span: Span, encoding: Encoding) -> types.Range:
    return types.Range(start=client_position(lines, span.start, encoding), end=client_position(lines, span.end, encoding))


def client_position(lines: list[str], position: Position, encoding: Encoding) -> types.Position:
    if position.line >= len(lines):
        return types.Position(line=len(lines), character=0)
    return types.Position(line=position.line, character=encoding.to_client(lines[position.line], position.column))


def server_position(lines: list[str], position: types.Position, encoding: Encoding) -> Position:
    if position.line >= len(lines):
        return Position(len(lines), 0)
    return Position(position.line, encoding.from_client(lines[position.line], position.character))
