"""The incremental document: a file as a list of segments, re-analysed where it changed.

A file is tiled into segments, so that every line belongs to exactly one:
a *unit* (a top-level statement, or a statement of a class body,
recursively for nested classes) with the comment and blank lines that follow
it; a class *header* (decorators, the `class` line, anything before its first
member); a *prelude* (lines before the first statement of the file).

``update(lines)`` finds the lines that changed (common prefix and suffix),
re-cuts only the segments they touch — as members of their class when the
change stays inside a class body, else as whole top-level statements — with
the standard library's ``ast``, shifts the segments after them, merges the
module summary from per-segment facts, and runs the rules (libcst) only on
units whose text is new or whose summary dependencies changed: unit results
are cached by (class path, text) and remember the summary facts they read.
Positions are computed per unit and only for findings.

A region that does not parse (half-typed code) is recovered the way a whole
file is: the broken top-level block is blanked (its lines kept empty), one
GAP000 reports it, the rest is analysed, and the findings the broken lines
had before are kept as *stale* until they parse again. Findings equal those
of a fresh build of the same text (tests/test_incremental.py checks this).
"""

from __future__ import annotations

import ast
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gap_ls.core import registry
from gap_ls.core.engine import Analysis, UnitSource, finish_analysis, run_unit, syntax_findings, triggers_of
from gap_ls.core.model import Finding, Suppression
from gap_ls.core.resolve import Resolver
from gap_ls.core.rule import Rule
from gap_ls.core.settings import Settings
from gap_ls.core.source import (
    MEMBER_HEADER,
    PARSE_ERRORS,
    SourceSyntaxError,
    Unit,
    blank_statement_at,
    first_line,
    groups,
    split_lines,
    splittable,
    syntax_error_of,
)
from gap_ls.core.summary import USAGE_WORDS, ClassFacts, ModuleSummary, UnitFacts, header_facts, merge, unit_facts
from gap_ls.core.suppression import find_suppressions

if TYPE_CHECKING:  # the concurrency model loads only when a race rule asks for it
    from gap_ls.core.concurrency import UnitFlow

MAX_RECOVERIES = 8


@dataclass(frozen=True)
class Segment:
    kind: str  # "unit", "header" or "prelude"
    start: int  # first line, 0-based
    end: int  # last line, inclusive
    class_path: tuple[str, ...]  # unit: its enclosing classes; header: the classes around its class
    text: str  # for a recovered region, with the broken lines blanked
    facts: UnitFacts | ClassFacts | None = None
    body_indent: int | None = None  # header: the column of the class's members
    suppressions: tuple[Suppression, ...] = ()  # lines relative to the segment's start
    error: SourceSyntaxError | None = None  # a blanked broken block starts here (relative line)
    blanked: tuple[int, int] | None = None  # relative lines [start, end) blanked because they do not parse

    def shifted(self, delta: int) -> Segment:
        return replace(self, start=self.start + delta, end=self.end + delta) if delta else self

    def unit(self) -> Unit:
        return Unit(self.start, self.end, self.class_path, self.text, ())


@dataclass(frozen=True)
class _Cached:
    """A unit's findings (relative to its first line) and the summary facts they depended on."""

    findings: tuple[Finding, ...]
    module_version: int
    dependencies: tuple[tuple[tuple, object], ...]  # (ModuleSummary.fact key, the value read)


class _NeedsPrevious(Exception):
    """The region starts with lines that belong to the segment before it."""


@dataclass
class AnalysisDocument:
    settings: Settings
    path: Path | None = None
    resolver: Resolver | None = None
    lines: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    analysis: Analysis = field(default_factory=lambda: Analysis(findings=()))
    units_analysed: int = 0  # libcst runs in the last update
    _starts: list[int] = field(default_factory=list)
    _cache: dict[tuple[tuple[str, ...], str], _Cached] = field(default_factory=dict)
    _facts: FactsCache = field(default_factory=lambda: FactsCache())
    _flows: dict[tuple[tuple[str, ...], str], UnitFlow] = field(default_factory=dict)  # see ModuleSummary.concurrency
    _model_cache: dict[str, object] = field(default_factory=dict)
    _effects: dict[tuple, object] = field(default_factory=dict)  # see ModuleSummary.effects
    _module_key: tuple | None = None
    _module_version: int = 0
    _stale: tuple[Finding, ...] = ()

    @classmethod
    def build(cls, text: str, settings: Settings, path: Path | None = None, resolver: Resolver | None = None) -> AnalysisDocument:
        document = cls(settings, path, resolver)
        document.update(split_lines(text))
        return document

    # -- updating ---------------------------------------------------------------------------------
    def update(self, lines: Sequence[str]) -> Analysis:
        new = list(lines)
        old = self.lines
        if new == old and self.segments:
            return self.analysis
        was_broken = any(s.blanked for s in self.segments)
        if not was_broken:
            self._stale = ()
        if not self.segments or not old or not new or was_broken:
            # From a broken state only a fresh cut is sure to agree with a fresh build: a string
            # or bracket left open may have changed how everything after it was read.
            self.segments = self._cut_fresh(new)
        else:
            prefix = _common_prefix(old, new)
            suffix = _common_suffix(old, new, prefix)
            self._recut_changed(old, new, prefix, len(old) - suffix, len(new) - suffix)
        self.lines = new
        self._starts = [s.start for s in self.segments]
        try:
            self.analysis = self._analyse()
        finally:
            self._facts.statements.clear()  # the trees are only needed while analysing
        return self.analysis

    def _cut_fresh(self, lines: list[str]) -> list[Segment]:
        if not lines:
            return []
        cut = _cut(lines, 0, len(lines), (), None, self._facts)
        return cut if cut is not None else _recover(lines, 0, len(lines), self._facts)

    def _recut_changed(self, old: list[str], new: list[str], prefix: int, old_stop: int, new_stop: int) -> None:
        """Old lines [prefix, old_stop) became new lines [prefix, new_stop): re-cut what they touch."""
        delta = new_stop - old_stop
        first = self._index_of(min(prefix, len(old) - 1))
        stop = self._index_of(min(max(old_stop - 1, prefix), len(old) - 1)) + 1
        if first > 0 and prefix == self.segments[first].start:
            first -= 1  # lines added where a segment starts may be trailing lines of the one before
        cut = None
        for low, high, class_path in self._attempts(first, stop):
            low = self._statement_start(new, low)
            try:
                cut = self._cut_span(new, low, high, delta, class_path)
            except _NeedsPrevious:
                continue
            if cut is not None:
                first, stop = low, high
                break
        if cut is None:
            # It does not parse even as whole statements: recover the whole file, as a fresh
            # build would (a string or bracket opened here may close far away).
            self._remember_stale(first, stop, prefix, old_stop, delta)
            self.segments = self._cut_fresh(new)
            return
        self.segments = self.segments[:first] + cut + [s.shifted(delta) for s in self.segments[stop:]]

    def _attempts(self, first: int, stop: int):
        """Spans to re-cut, smallest first: the members of one class; the whole top-level
        statements; with the statement after (a decorator typed above a def), before (a block
        indented under the previous def), or both."""
        members = _members_of(self.segments[first:stop])
        if members:
            yield first, stop, members
        low, high = self._top_level(first, stop)
        yield low, high, ()
        after = self._top_level(high, high + 1)[1] if high < len(self.segments) else high
        before = self._top_level(low - 1, low)[0] if low > 0 else low
        if after > high:
            yield low, after, ()
        if before < low:
            yield before, high, ()
            if after > high:
                yield before, after, ()

    def _statement_start(self, lines: list[str], index: int) -> int:
        """Move back to a segment whose first line starts a statement (not trailing comments)."""
        while index > 0 and not _starts_statement(lines, self.segments[index].start):
            index -= 1
        return index

    def _cut_span(self, lines: list[str], first: int, stop: int, delta: int, class_path: tuple[str, ...]) -> list[Segment] | None:
        start_line = self.segments[first].start
        end_line = self.segments[stop - 1].end + 1 + delta
        indent = self._body_indent(class_path) if class_path else None
        return _cut(lines, start_line, end_line, class_path, indent, self._facts)

    def _top_level(self, first: int, stop: int) -> tuple[int, int]:
        """[first, stop) grown to whole top-level statements (a class with all its members)."""
        while first > 0 and self.segments[first].class_path:
            first -= 1
        while stop < len(self.segments) and self.segments[stop].class_path:
            stop += 1
        return first, stop

    def _body_indent(self, class_path: tuple[str, ...]) -> int | None:
        qualname = ".".join(class_path)
        for segment in self.segments:
            if segment.kind == "header" and isinstance(segment.facts, ClassFacts) and segment.facts.qualname == qualname:
                return segment.body_indent
        return None

    def _index_of(self, line: int) -> int:
        return max(bisect_right(self._starts, line) - 1, 0)

    def _remember_stale(self, first: int, stop: int, prefix: int, old_stop: int, delta: int) -> None:
        """The last findings of the segments about to be re-cut, moved to the new line numbers;
        kept only if the region turns out not to parse."""
        stale = []
        for segment in self.segments[first:stop]:
            cached = self._cache.get((segment.class_path, segment.text)) if segment.kind == "unit" else None
            for finding in cached.findings if cached is not None else ():
                line = finding.span.start.line + segment.start
                if line < prefix:
                    stale.append(finding.shifted(segment.start))
                elif line >= old_stop:
                    stale.append(finding.shifted(segment.start + delta))
        self._stale = tuple(stale)

    # -- analysing --------------------------------------------------------------------------------
    def _analyse(self) -> Analysis:
        unit_segments = [s for s in self.segments if s.kind == "unit"]
        summary = merge(
            [s.facts for s in unit_segments if isinstance(s.facts, UnitFacts)],
            [s.facts for s in self.segments if s.kind == "header" and isinstance(s.facts, ClassFacts)],
        )
        summary.sources = tuple((s.class_path, s.text) for s in unit_segments)
        summary.flow_cache = self._flows
        summary.flow_statements = self._facts.statements
        summary.model_cache = self._model_cache
        summary.effects_cache = self._effects  # type: ignore[assignment]
        module_key = summary.module_key()
        if module_key != self._module_key:
            self._module_key = module_key
            self._module_version += 1
        rules = registry.enabled_rules(self.settings, self.settings.ignored_for(self.path))
        source = UnitSource("".join(self.lines), self.path, self.resolver)
        triggers = triggers_of([r for r in rules if not r.meta], summary)
        if not self._cache:
            # A fresh build analyses every unit: searching each only for the trigger words the
            # file holds pays off. An edit analyses a few units; scanning the file would not.
            triggers = _present(triggers, source.text)
        raw: list[Finding] = []
        self.units_analysed = 0
        live = set()
        for segment in unit_segments:
            key = (segment.class_path, segment.text)
            live.add(key)
            cached = self._cache.get(key)
            if cached is None or not self._still_valid(cached, summary):
                cached = self._run(segment, summary, triggers, source)
                self._cache[key] = cached
            raw.extend(f.shifted(segment.start) for f in cached.findings)
        for key in [k for k in self._cache if k not in live]:
            del self._cache[key]
        for key in [k for k in self._facts if k not in live]:
            del self._facts[key]
        for key in [k for k in self._flows if k not in live]:
            del self._flows[key]
        for key in [k for k in self._effects if k[:2] not in live]:
            del self._effects[key]
        broken = [s for s in self.segments if s.error is not None]
        blanked = [(s.start + s.blanked[0], s.start + s.blanked[1]) for s in self.segments if s.blanked]
        if broken:
            error = broken[0].error
            assert error is not None
            absolute = SourceSyntaxError(error.message, error.line + broken[0].start, error.column)
            raw.extend(syntax_findings(absolute, rules, self.settings, rest_checked=True))
        suppressions = [_moved(s, segment.start) for segment in self.segments for s in segment.suppressions]
        units = tuple(s.unit() for s in unit_segments)
        analysis = finish_analysis(raw, suppressions, rules, self.settings, summary, units, self.units_analysed)
        stale = tuple(f for f in self._stale if any(a <= f.span.start.line < b for a, b in blanked))
        return replace(analysis, parse_failed=bool(broken), stale=stale)

    def _still_valid(self, cached: _Cached, summary: ModuleSummary) -> bool:
        if cached.module_version != self._module_version:
            return False
        return all(summary.fact(key) == value for key, value in cached.dependencies)

    def _run(self, segment: Segment, summary: ModuleSummary, triggers: dict, source: UnitSource) -> _Cached:
        facts = segment.facts if isinstance(segment.facts, UnitFacts) else None
        wanted: list[type[Rule]] = []
        # What the relevance checks read of the summary decides whether the unit is analysed at
        # all: it is a dependency of the (possibly empty) result, like what the rules read.
        recorder = RecordingSummary(summary)
        for rule, words in triggers.items():
            found = () if words is None else tuple(w for w in words if w in segment.text)
            if (words is None or found) and rule.relevant(facts, recorder, found):  # type: ignore[arg-type]
                wanted.append(rule)
        if not wanted:
            return _Cached((), self._module_version, tuple(recorder.read.items()))
        self.units_analysed += 1
        unit = replace(segment.unit(), start=0, end=segment.end - segment.start)
        findings, dependencies = run_unit(unit, summary, self.settings, wanted, replace(source, line_offset=segment.start))
        return _Cached(tuple(findings), self._module_version, tuple({**recorder.read, **dependencies}.items()))


class RecordingSummary:
    """A module summary that remembers the facts read through ``fact()`` (for rule relevance)."""

    def __init__(self, summary: ModuleSummary) -> None:
        self._summary = summary
        self.read: dict[tuple, object] = {}

    def fact(self, key: tuple) -> object:
        if key not in self.read:
            self.read[key] = self._summary.fact(key)
        return self.read[key]

    def __getattr__(self, name: str):
        value = getattr(self._summary, name)
        setattr(self, name, value)  # later reads are plain attribute reads
        return value


def _present(triggers: dict, text: str) -> dict:
    """The trigger words of each rule that occur in ``text`` at all; rules with none are left
    out (a unit is searched only for words its file holds: most files hold few)."""
    present: dict = {}
    for rule, words in triggers.items():
        if words is None:
            present[rule] = None
        elif found := tuple(w for w in words if w in text):
            present[rule] = found
    return present


# -- cutting text into segments ------------------------------------------------------------------------


class FactsCache(dict[tuple[tuple[str, ...], str], UnitFacts]):
    """Facts by (class path, unit text). While an update runs, ``statements`` also keeps the
    ast statements the units were cut from, so flow facts (ModuleSummary.concurrency) can be
    read without parsing the units again; the update clears it when done."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: dict[tuple[tuple[str, ...], str], list[ast.stmt]] = {}
        # The usage words (summary.USAGE_WORDS) the file holds at all: a unit is searched only
        # for these (set by each update; most files hold few of them).
        self.usage_words: tuple[str, ...] = USAGE_WORDS


def _cut(
    lines: list[str], start: int, end: int, class_path: tuple[str, ...], indent: int | None, facts: FactsCache
) -> list[Segment] | None:
    """Segments for lines [start, end) parsed as top-level statements, or as members of
    ``class_path`` (indented at ``indent``); None if they do not parse that way."""
    text = "".join(lines[start:end])
    try:
        tree = ast.parse(MEMBER_HEADER + text if class_path else text)
    except PARSE_ERRORS:
        return None
    facts.usage_words = tuple(word for word in USAGE_WORDS if word in text)  # only this region is cut
    if not class_path:
        return _tile(tree.body, lines, start, end, (), start, facts)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.ClassDef) or not tree.body[0].body:
        return None
    members = tree.body[0].body
    if indent is None or any(m.col_offset != indent for m in members):
        return None
    return _tile(members, lines, start, end, class_path, start - 1, facts)


def _recover(lines: list[str], start: int, end: int, facts: FactsCache) -> list[Segment]:
    """Blank the broken top-level blocks of lines [start, end) (one at a time, from the first
    error) and cut the rest; each blanked block's error goes to the segment that holds it."""
    region = list(lines[start:end])
    facts.usage_words = USAGE_WORDS
    blocks: list[tuple[int, int, SourceSyntaxError]] = []  # blanked [first, stop) and its error
    for _ in range(MAX_RECOVERIES):
        try:
            tree = ast.parse("".join(region))
        except PARSE_ERRORS as exc:
            error = syntax_error_of(exc, 0, text_shift=start)  # lines relative to the region
            blanked = blank_statement_at(region, error.line)
            if blanked is None:
                break
            changed = [i for i, (a, b) in enumerate(zip(region, blanked, strict=True)) if a != b]
            blocks.append((changed[0], changed[-1] + 1, error))
            region = blanked
            continue
        segments = [s.shifted(start) for s in _tile(tree.body, region, 0, len(region), (), 0, facts, start == 0)]
        return _attach_blocks(segments, blocks, start)
    error = blocks[0][2] if blocks else SourceSyntaxError("cannot be parsed", 0, 0)
    return [Segment("prelude", start, end - 1, (), "".join(lines[start:end]), error=error, blanked=(0, end - start))]


def _attach_blocks(segments: list[Segment], blocks: list[tuple[int, int, SourceSyntaxError]], start: int) -> list[Segment]:
    """Each blanked block belongs to the segment that holds its first line; the first block's
    error is the one reported."""
    starts = [s.start for s in segments]
    for order, (first, stop, error) in enumerate(sorted(blocks, key=lambda b: b[0])):
        index = max(bisect_right(starts, first + start) - 1, 0)
        holder = segments[index]
        changes = {"blanked": (first + start - holder.start, stop + start - holder.start)}
        if order == 0:
            changes["error"] = SourceSyntaxError(error.message, error.line + start - holder.start, error.column)
        segments[index] = replace(holder, **changes)
    return segments


def _tile(
    statements: list[ast.stmt],
    lines: list[str],
    start: int,
    end: int,
    class_path: tuple[str, ...],
    shift: int,
    facts: FactsCache,
    at_file_start: bool | None = None,
) -> list[Segment]:
    """Segments covering lines [start, end) for ``statements`` (an ast line L is line L - 1 + shift)."""
    at_file_start = start == 0 if at_file_start is None else at_file_start
    grouped = groups(statements)
    segments: list[Segment] = []
    first_start = first_line(grouped[0][0]) - 1 + shift if grouped else end
    if first_start > start:
        if class_path or not at_file_start:
            raise _NeedsPrevious()
        segments.append(_segment("prelude", lines, start, first_start - 1, ()))
    for index, group in enumerate(grouped):
        seg_start = first_line(group[0]) - 1 + shift
        seg_end = first_line(grouped[index + 1][0]) - 2 + shift if index + 1 < len(grouped) else end - 1
        head = group[0]
        if len(group) == 1 and isinstance(head, ast.ClassDef) and splittable(head):
            members_start = first_line(head.body[0]) - 1 + shift
            header = _segment("header", lines, seg_start, members_start - 1, class_path, header_facts(head, class_path))
            segments.append(replace(header, body_indent=head.body[0].col_offset))
            segments.extend(_tile(head.body, lines, members_start, seg_end + 1, (*class_path, head.name), shift, facts))
            continue
        segment = _segment("unit", lines, seg_start, seg_end, class_path)
        key = (class_path, segment.text)
        if key not in facts:
            # Function lines in the facts are relative to the unit, so the facts of an
            # unchanged unit can be reused wherever it moves.
            facts[key] = unit_facts(group, class_path, shift - seg_start, segment.text, facts.usage_words)
        facts.statements[key] = group
        segments.append(replace(segment, facts=facts[key]))
    return segments


def _segment(kind: str, lines: list[str], start: int, end: int, class_path: tuple[str, ...], facts=None) -> Segment:
    text = "".join(lines[start : end + 1])
    suppressions = tuple(find_suppressions(text))
    return Segment(kind, start, end, class_path, text, facts, suppressions=suppressions)


def _starts_statement(lines: list[str], line: int) -> bool:
    """Whether a region may start at ``line``: not a blank or comment line (those trail the
    segment before)."""
    text = lines[line].strip() if line < len(lines) else ""
    return bool(text) and not text.startswith("#")


def _members_of(segments: list[Segment]) -> tuple[str, ...]:
    """The class whose body all these segments are members of, or () for top-level."""
    paths = {s.class_path for s in segments}
    if len(paths) == 1 and all(s.kind == "unit" for s in segments):
        return next(iter(paths))
    return ()


def _moved(suppression: Suppression, start: int) -> Suppression:
    return replace(suppression, line=suppression.line + start, span=suppression.span.shifted(start))


def _common_prefix(old: list[str], new: list[str]) -> int:
    low, high = 0, min(len(old), len(new))
    while low < high:  # binary search on slice equality, compared in C
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(old: list[str], new: list[str], prefix: int) -> int:
    low, high = 0, min(len(old), len(new)) - prefix
    while low < high:
        middle = (low + high + 1) // 2
        if old[len(old) - middle :] == new[len(new) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low
