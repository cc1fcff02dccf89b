"""The analysis pipeline: source text in, findings out.

``analyze(text, settings)`` parses the file with ``ast`` to cut it into units
and build the module summary, parses with libcst only the units some enabled
rule wants (by trigger substrings), runs all rules over each unit in one
batched traversal, computes positions only for units that produced reports,
then applies suppressions. Pure and synchronous: the CLI and the language
server are its only callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from gap_ls.core import registry
from gap_ls.core.model import Family, Finding, FixHint, Related, Span
from gap_ls.core.resolve import Resolver
from gap_ls.core.rule import Report, Rule, UnitContext
from gap_ls.core.settings import Settings
from gap_ls.core.source import (
    ParsedModule,
    SourceDecodeError,
    SourceSyntaxError,
    Unit,
    decode_source,
    parse_module_recovering,
)
from gap_ls.core.summary import ModuleSummary, summarize
from gap_ls.core.suppression import apply_suppressions, find_suppressions


@dataclass(frozen=True)
class Analysis:
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()
    units_total: int = 0
    units_parsed: int = 0
    parse_failed: bool = False
    # The file as the analysis saw it, kept for hover and fixes (not compared).
    parsed: ParsedModule | None = field(default=None, compare=False, repr=False)
    summary: ModuleSummary | None = field(default=None, compare=False, repr=False)


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
        return Analysis(findings=_syntax_findings(failure, rules, settings), parse_failed=True)
    return analyze(text, settings, path, resolver)


def analyze(
    text: str, settings: Settings | None = None, path: Path | None = None, resolver: Resolver | None = None
) -> Analysis:
    """Findings for ``text``; ``resolver`` (jedi) lets rules follow names into other modules."""
    settings = settings or Settings()
    rules = registry.enabled_rules(settings, settings.ignored_for(path))
    try:
        recovered = parse_module_recovering(text)
    except SourceSyntaxError as exc:
        return Analysis(findings=_syntax_findings(exc, rules, settings), parse_failed=True)
    parsed = recovered.parsed
    summary = summarize(parsed.tree)
    triggers = {rule: rule.triggers_for(summary.imports) for rule in rules if not rule.meta}
    raw: list[Finding] = []
    parsed_units = 0
    for unit in parsed.units:
        wanted = [rule for rule, words in triggers.items() if words is None or any(w in unit.text for w in words)]
        if not wanted:
            continue
        parsed_units += 1
        raw.extend(analyze_unit(unit, summary, settings, wanted, UnitSource(text, path, resolver)))
    if recovered.errors:
        # Half-typed code: the broken statement is reported, the rest is still checked.
        first = recovered.errors[0]
        raw.extend(_syntax_findings(first, rules, settings, rest_checked=True))
    analysis = _finish(parsed, summary, raw, rules, settings, parsed_units)
    return replace(analysis, parse_failed=bool(recovered.errors))


@dataclass(frozen=True)
class UnitSource:
    """What a unit's rules may need beyond the unit: the whole text and path (for jedi)."""

    text: str = ""
    path: Path | None = None
    resolver: Resolver | None = None


def analyze_unit(
    unit: Unit,
    summary: ModuleSummary,
    settings: Settings,
    rules: Sequence[type[Rule]],
    source: UnitSource = UnitSource(),
) -> list[Finding]:
    """Run ``rules`` over one unit; findings carry positions in the whole file."""
    try:
        return _run_rules(unit, summary, settings, rules, source)
    except cst.ParserSyntaxError as exc:
        # ast accepted the file, libcst did not (a grammar corner libcst lacks).
        line = unit.line_offset() + exc.raw_line - 1
        message = f"File does not parse: libcst cannot parse this statement: {exc.message}"
        return [_syntax_finding(message, max(line, unit.start), 0, settings)]
    except RecursionError:
        # A very deep expression (a thousand chained `+`) exhausts libcst's recursive visitors.
        message = "Statement too deeply nested for gap-ls to analyse; nothing in it is checked"
        return [_syntax_finding(message, unit.start, 0, settings)]


def _run_rules(
    unit: Unit, summary: ModuleSummary, settings: Settings, rules: Sequence[type[Rule]], source: UnitSource
) -> list[Finding]:
    module = cst.parse_module(unit.parse_text())
    statements = module.body[0].body.body if unit.is_member else module.body
    context = UnitContext(unit, summary, settings, module, source.text, source.path, source.resolver)
    instances = [rule(context) for rule in rules]
    for statement in statements:
        cst.visit_batched(statement, instances, before_visit=context.enter, after_leave=context.leave)
    for instance in instances:
        instance.finish()
    reports = [report for instance in instances for report in instance.reports]
    if not reports:
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    by_code = {rule.code: rule for rule in rules}
    offset = unit.line_offset()
    return [_to_finding(report, by_code[report.code], positions, offset, context, settings) for report in reports]


def _finish(
    parsed: ParsedModule,
    summary: ModuleSummary,
    raw: list[Finding],
    rules: Sequence[type[Rule]],
    settings: Settings,
    parsed_units: int,
) -> Analysis:
    suppressions = find_suppressions(parsed.text, parsed.lines)
    enabled = frozenset(rule.code for rule in rules)
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
        units_total=len(parsed.units),
        units_parsed=parsed_units,
        parsed=parsed,
        summary=summary,
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
            FixHint(kind=fix.kind, title=fix.title, target=_span(positions[fix.target], offset), data=dict(fix.data))
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


def _syntax_findings(
    exc: SourceSyntaxError, rules: Sequence[type[Rule]], settings: Settings, rest_checked: bool = False
) -> tuple[Finding, ...]:
    if not any(rule.code == registry.SYNTAX_ERROR for rule in rules):
        return ()
    message = exc.message if exc.message.startswith("File ") else f"File does not parse: {exc.message}"
    if rest_checked:
        message += "; the statements around it are skipped, the rest of the file is still checked"
    return (_syntax_finding(message, exc.line, exc.column, settings),)
