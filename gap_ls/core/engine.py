"""The analysis pipeline: source text in, findings out.

``analyze(text, settings)`` builds an incremental document (``document``)
for the text: the file is cut into units with ``ast``, the module summary is
merged from per-unit facts, libcst parses only the units some enabled rule
wants (by trigger substrings), all rules run over a unit in one traversal,
positions are computed only for units that produced reports, then
suppressions are applied. This module holds the per-unit machinery the
document uses. Pure and synchronous: the CLI and the language server are its
only callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange

from gap_ls.core import registry
from gap_ls.core.model import Family, Finding, FixHint, Related, Span, Suppression
from gap_ls.core.nodes import children
from gap_ls.core.resolve import Resolver
from gap_ls.core.rule import Report, Rule, UnitContext
from gap_ls.core.settings import Settings
from gap_ls.core.source import SourceDecodeError, SourceSyntaxError, Unit, decode_source
from gap_ls.core.summary import ModuleSummary
from gap_ls.core.suppression import apply_suppressions


@dataclass(frozen=True)
class Analysis:
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()
    units_total: int = 0
    units_parsed: int = 0  # units libcst parsed for this analysis (the rest came from the cache)
    parse_failed: bool = False
    # Findings of statements that do not parse right now, from before they broke (editor only).
    stale: tuple[Finding, ...] = ()
    # What the analysis saw, kept for hover and fixes (not compared).
    summary: ModuleSummary | None = field(default=None, compare=False, repr=False)
    units: tuple[Unit, ...] = field(default=(), compare=False, repr=False)

    def unit_at(self, line: int) -> Unit | None:
        for unit in self.units:
            if unit.start <= line <= unit.end:
                return unit
        return None


def analyze_bytes(
    data: bytes, settings: Settings | None = None, path: Path | None = None, resolver: Resolver | None = None
) -> Analysis:
    """Decode like the interpreter (BOM, coding cookie), then analyse; undecodable -> GAP000."""
    settings = settings or Settings()
    try:
        text = decode_source(data)
    except SourceDecodeError as exc:
        rules = registry.enabled_rules(settings, settings.ignored_for(path))
        failure = SourceSyntaxError(f"File cannot be decoded: {exc}", 0, 0)
        return Analysis(findings=syntax_findings(failure, rules, settings), parse_failed=True)
    return analyze(text, settings, path, resolver)


def analyze(
    text: str, settings: Settings | None = None, path: Path | None = None, resolver: Resolver | None = None
) -> Analysis:
    """Findings for ``text``; ``resolver`` (jedi) lets rules follow names into other modules."""
    # The document builds on this module's per-unit machinery, hence the import here.
    from gap_ls.core.document import AnalysisDocument

    return AnalysisDocument.build(text, settings or Settings(), path, resolver).analysis


@dataclass(frozen=True)
class UnitSource:
    """What a unit's rules may need beyond the unit: the whole text and path (for jedi),
    and where the unit really starts when it is analysed at line 0."""

    text: str = ""
    path: Path | None = None
    resolver: Resolver | None = None
    line_offset: int = 0


def triggers_of(rules: Sequence[type[Rule]], summary: ModuleSummary) -> dict[type[Rule], tuple[str, ...] | None]:
    return {rule: rule.triggers_for(summary.imports) for rule in rules if not rule.meta}


def run_unit(
    unit: Unit,
    summary: ModuleSummary,
    settings: Settings,
    rules: Sequence[type[Rule]],
    source: UnitSource = UnitSource(),
) -> tuple[list[Finding], dict[tuple, object]]:
    """Run ``rules`` over one unit: its findings (positions in the unit's coordinates) and the
    functions of the summary it looked up."""
    try:
        return _run_rules(unit, summary, settings, rules, source)
    except cst.ParserSyntaxError as exc:
        # ast accepted the file, libcst did not (a grammar corner libcst lacks).
        line = unit.line_offset() + exc.raw_line - 1
        message = f"File does not parse: libcst cannot parse this statement: {exc.message}"
        return [_syntax_finding(message, max(line, unit.start), 0, settings)], {}
    except (_TooDeep, RecursionError):
        # A very deep expression (hundreds of chained `+`) would exhaust libcst's recursive
        # code generation, which computes positions.
        message = "Statement too deeply nested for gap-ls to analyse; nothing in it is checked"
        return [_syntax_finding(message, unit.start, 0, settings)], {}


# libcst computes positions by recursive code generation; past this nesting it overflows the
# interpreter's stack (measured: fine at ~300 levels, fails at ~400).
MAX_DEPTH = 250


class _TooDeep(Exception):
    """The unit nests deeper than libcst's recursive position computation can go."""


def _run_rules(
    unit: Unit, summary: ModuleSummary, settings: Settings, rules: Sequence[type[Rule]], source: UnitSource
) -> tuple[list[Finding], dict[tuple, object]]:
    module = cst.parse_module(unit.parse_text())
    statements = module.body[0].body.body if unit.is_member else module.body
    context = UnitContext(unit, summary, settings, module, source.text, source.path, source.resolver, source.line_offset)
    instances = [rule(context) for rule in rules]
    dispatcher = _Dispatcher(instances, context)
    for statement in statements:
        dispatcher.traverse(statement)
    if context.max_depth > MAX_DEPTH:
        raise _TooDeep()
    for instance in instances:
        instance.finish()
    reports = [report for instance in instances for report in instance.reports]
    if not reports:
        return [], context.dependencies
    positions = context.positions()
    by_code = {rule.code: rule for rule in rules}
    offset = unit.line_offset()
    findings = [_to_finding(report, by_code[report.code], positions, offset, context, settings) for report in reports]
    return findings, context.dependencies


_HOOKS: dict[type, tuple[dict[str, str], dict[str, str]]] = {}


def _hooks(rule: type[Rule]) -> tuple[dict[str, str], dict[str, str]]:
    """Node type name -> method name, for the visit_ and leave_ methods a rule class defines
    (computed once per class: libcst's visit_batched re-inspects every visitor per call)."""
    if rule not in _HOOKS:
        names = [n for n in dir(rule) if n.startswith(("visit_", "leave_")) and callable(getattr(rule, n))]
        own = [n for n in names if getattr(rule, n) is not getattr(cst.BatchableCSTVisitor, n, None)]
        visits = {n.removeprefix("visit_"): n for n in own if n.startswith("visit_")}
        leaves = {n.removeprefix("leave_"): n for n in own if n.startswith("leave_")}
        _HOOKS[rule] = (visits, leaves)
    return _HOOKS[rule]


class _Dispatcher:
    """One traversal for all rules of a unit: what libcst's visit_batched does, without
    re-inspecting every visitor's methods per call and without rebuilding the tree (a libcst
    visit reconstructs every node it passes)."""

    def __init__(self, rules: Sequence[Rule], context: UnitContext) -> None:
        self._context = context
        self._visit: dict[str, list] = {}
        self._leave: dict[str, list] = {}
        for rule in rules:
            visits, leaves = _hooks(type(rule))
            for node_type, method in visits.items():
                self._visit.setdefault(node_type, []).append(getattr(rule, method))
            for node_type, method in leaves.items():
                self._leave.setdefault(node_type, []).append(getattr(rule, method))

    def traverse(self, root: cst.CSTNode) -> None:
        leaving = object()  # marks "all children done" on the stack
        stack: list = [root]
        while stack:
            node = stack.pop()
            if node is leaving:
                done = stack.pop()
                for method in self._leave.get(type(done).__name__, ()):
                    method(done)
                self._context.leave(done)
                continue
            self._context.enter(node)
            for method in self._visit.get(type(node).__name__, ()):
                method(node)
            stack.append(node)
            stack.append(leaving)
            stack.extend(reversed(children(node)))


def finish_analysis(
    raw: list[Finding],
    suppressions: Sequence[Suppression],
    rules: Sequence[type[Rule]],
    settings: Settings,
    summary: ModuleSummary,
    units: tuple[Unit, ...],
    units_parsed: int,
) -> Analysis:
    """Apply suppressions, report unused ones (GAP001), sort."""
    # A suppression of a diff-only code (GAP191...) is judged where diffs are: the editor's
    # comparison with HEAD, and `gap-ls review`; here it can never be "unused".
    enabled = frozenset(rule.code for rule in rules if not rule.diff_only)
    result = apply_suppressions(_dedupe(raw), suppressions, enabled, registry.known_codes())
    findings = list(result.findings)
    if registry.UNUSED_SUPPRESSION in enabled:
        unused_rule = registry.rule_by_code(registry.UNUSED_SUPPRESSION)
        for suppression, why in result.unused:
            findings.append(
                _meta_finding(
                    unused_rule,
                    f"Unused suppression: `{'# gap: ignore' if suppression.style == 'gap' else '# noqa'}` {why}",
                    suppression.span,
                    settings,
                    checked=("no finding of this code starts on this line or the construct it starts",),
                )
            )
    findings.sort(key=Finding.sort_key)
    return Analysis(
        findings=tuple(findings),
        suppressed=tuple(sorted(result.suppressed, key=Finding.sort_key)),
        units_total=len(units),
        units_parsed=units_parsed,
        summary=summary,
        units=units,
    )


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, Span]] = set()
    out = []
    for finding in findings:
        key = (finding.code, finding.span)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out


# -- positions -------------------------------------------------------------------


def _span(code_range: CodeRange, offset: int) -> Span:
    return Span.of(
        code_range.start.line - 1 + offset,
        code_range.start.column,
        code_range.end.line - 1 + offset,
        code_range.end.column,
    )


def _header_end(node: cst.CSTNode, positions: Mapping[cst.CSTNode, CodeRange]) -> tuple[int, int] | None:
    """Where the "header" of a compound construct ends: `except X as e`, `for x in y`..."""
    last: cst.CSTNode | None = None
    if isinstance(node, (cst.ExceptHandler, cst.ExceptStarHandler)):
        last = node.name or node.type
        if last is None:
            start = positions[node].start
            return start.line, start.column + len("except")
    elif isinstance(node, cst.For):
        last = node.iter
    elif isinstance(node, (cst.While, cst.If)):
        last = node.test
    elif isinstance(node, cst.With):
        last = node.items[-1]
    elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        last = node.name
    elif isinstance(node, (cst.Try, cst.TryStar)):
        start = positions[node].start
        return start.line, start.column + len("try")
    if last is None:
        return None
    end = positions[last].end
    return end.line, end.column


def _to_finding(
    report: Report,
    rule: type[Rule],
    positions: Mapping[cst.CSTNode, CodeRange],
    offset: int,
    context: UnitContext,
    settings: Settings,
) -> Finding:
    whole = positions[report.node]
    span = _span(whole, offset)
    if report.header:
        end = _header_end(report.node, positions)
        if end is not None:
            span = Span.of(span.start.line, span.start.column, end[0] - 1 + offset, end[1])
    anchor = report.anchor or context.enclosing_statement(report.node)
    anchor_lines = {span.start.line, positions[anchor].start.line - 1 + offset}
    return Finding(
        code=rule.code,
        name=rule.name,
        family=rule.family,
        severity=registry.severity_of(rule, settings),
        message=report.message,
        span=span,
        checked=report.checked,
        unverifiable=report.unverifiable,
        related=tuple(Related(_span(positions[node], offset), message) for node, message in report.related),
        fixes=tuple(
            FixHint(
                kind=fix.kind,
                title=fix.title,
                target=_span(positions[fix.target], offset),
                data=dict(fix.data),
                spans={name: _span(positions[node], offset) for name, node in fix.nodes.items()},
            )
            for fix in report.fixes
        ),
        anchor_lines=frozenset(anchor_lines),
    )


# -- meta findings -----------------------------------------------------------------


def _meta_finding(
    rule: type[Rule] | None,
    message: str,
    span: Span,
    settings: Settings,
    checked: tuple[str, ...] = (),
    unverifiable: tuple[str, ...] = (),
) -> Finding:
    assert rule is not None, "meta rules are always registered"
    return Finding(
        code=rule.code,
        name=rule.name,
        family=Family.META,
        severity=registry.severity_of(rule, settings),
        message=message,
        span=span,
        checked=checked,
        unverifiable=unverifiable,
    )


def _syntax_finding(message: str, line: int, column: int, settings: Settings) -> Finding:
    return _meta_finding(
        registry.rule_by_code(registry.SYNTAX_ERROR),
        message,
        Span.of(line, column, line, column + 1),
        settings,
        checked=("the file was parsed before any rule ran",),
        unverifiable=("every gap-ls rule: nothing in this file is analysed until it parses",),
    )


def syntax_findings(
    exc: SourceSyntaxError, rules: Sequence[type[Rule]], settings: Settings, rest_checked: bool = False
) -> tuple[Finding, ...]:
    if not any(rule.code == registry.SYNTAX_ERROR for rule in rules):
        return ()
    message = exc.message if exc.message.startswith("File ") else f"File does not parse: {exc.message}"
    if rest_checked:
        message += "; the statements around it are skipped, the rest of the file is still checked"
    return (_syntax_finding(message, exc.line, exc.column, settings),)
