"""Rendering findings for people and for tools: text, JSON and SARIF 2.1.0.

Positions are 1-based lines and 1-based columns (Unicode code points) in
every format here, as in ruff's output; SARIF declares its column kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gap_ls import __version__
from gap_ls.core import registry
from gap_ls.core.model import Finding, Severity, Span
from gap_ls.core.ruledocs import doc_url, rule_doc

INFORMATION_URI = "https://github.com/gap-ls/gap-ls"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note", Severity.HINT: "note"}


@dataclass(frozen=True)
class FileResult:
    path: str
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...]


def _location(span: Span) -> dict[str, dict[str, int]]:
    return {
        "location": {"line": span.start.line + 1, "column": span.start.column + 1},
        "end_location": {"line": span.end.line + 1, "column": span.end.column + 1},
    }


# -- text ---------------------------------------------------------------------------------


def render_text(results: Sequence[FileResult], explain: bool) -> str:
    lines: list[str] = []
    for result in results:
        for finding in result.findings:
            start = finding.span.start
            lines.append(f"{result.path}:{start.line + 1}:{start.column + 1}: {finding.code} {finding.message}")
            if explain:
                lines.extend(_explain(finding))
    count = sum(len(r.findings) for r in results)
    suppressed = sum(len(r.suppressed) for r in results)
    files = len(results)
    noun = "file" if files == 1 else "files"
    extra = f" ({suppressed} suppressed)" if suppressed else ""
    if count:
        lines.append(f"Found {count} gap{'s' if count != 1 else ''} in {files} {noun} checked{extra}.")
    else:
        lines.append(f"No gaps found in {files} {noun} checked{extra}.")
    return "\n".join(lines) + "\n"


def _explain(finding: Finding) -> list[str]:
    out = []
    for fact in finding.checked:
        out.append(f"    checked: {fact}")
    for unknown in finding.unverifiable:
        out.append(f"    cannot verify: {unknown}")
    for related in finding.related:
        out.append(f"    see line {related.span.start.line + 1}: {related.message}")
    for fix in finding.fixes:
        out.append(f"    suggested fix: {fix.title}")
    return out


# -- JSON ---------------------------------------------------------------------------------


def render_json(results: Sequence[FileResult]) -> str:
    items: list[dict[str, Any]] = []
    for result in results:
        for finding in (*result.findings, *result.suppressed):
            item: dict[str, Any] = {
                "path": result.path,
                "code": finding.code,
                "name": finding.name,
                "family": finding.family.value,
                "severity": finding.severity.value,
                "message": finding.message,
                **_location(finding.span),
                "checked": list(finding.checked),
                "unverifiable": list(finding.unverifiable),
                "related": [{**_location(r.span), "message": r.message} for r in finding.related],
                "fixes": [{"kind": f.kind, "title": f.title} for f in finding.fixes],
                "url": doc_url(finding.code),
            }
            if finding.suppressed_by is not None:
                item["suppressed"] = {"style": finding.suppressed_by.style, "reason": finding.suppressed_by.reason}
            items.append(item)
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


# -- SARIF ----------------------------------------------------------------------------------


def render_sarif(results: Sequence[FileResult], problems: Iterable[tuple[str, str]], base: Path) -> str:
    rules = registry.all_rules()
    index = {rule.code: i for i, rule in enumerate(rules)}
    sarif_results = []
    for result in results:
        for finding in (*result.findings, *result.suppressed):
            sarif_results.append(_sarif_result(result.path, finding, index[finding.code]))
    notifications = [
        {"level": "error", "message": {"text": f"{path}: {message}"}} for path, message in problems
    ]
    run = {
        "tool": {"driver": _sarif_driver(rules)},
        "columnKind": "unicodeCodePoints",
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.resolve().as_uri() + "/"}},
        "invocations": [{"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}],
        "results": sarif_results,
    }
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _sarif_driver(rules: Sequence[type]) -> dict[str, Any]:
    descriptors = []
    for rule in rules:
        doc = rule_doc(rule)
        descriptors.append(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": doc.summary or rule.title},
                "help": {"text": doc.text(), "markdown": doc.markdown()},
                "helpUri": doc_url(rule.code),
                "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
                "properties": {"family": rule.family.value, "tags": ["gap-ls", rule.family.value]},
            }
        )
    return {
        "name": "gap-ls",
        "version": __version__,
        "semanticVersion": __version__,
        "informationUri": INFORMATION_URI,
        "rules": descriptors,
    }


def _sarif_region(span: Span) -> dict[str, int]:
    return {
        "startLine": span.start.line + 1,
        "startColumn": span.start.column + 1,
        "endLine": span.end.line + 1,
        "endColumn": span.end.column + 1,
    }


def _sarif_location(path: str, span: Span) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": Path(path).as_posix(), "uriBaseId": "%SRCROOT%"},
            "region": _sarif_region(span),
        }
    }


def _sarif_result(path: str, finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [_sarif_location(path, finding.span)],
        "properties": {
            "family": finding.family.value,
            "checked": list(finding.checked),
            "unverifiable": list(finding.unverifiable),
        },
    }
    if finding.related:
        result["relatedLocations"] = [
            {**_sarif_location(path, related.span), "id": i + 1, "message": {"text": related.message}}
            for i, related in enumerate(finding.related)
        ]
    if finding.suppressed_by is not None:
        result["suppressions"] = [
            {"kind": "inSource", "justification": finding.suppressed_by.reason or "(no reason given)"}
        ]
    return result
