"""Hover text: what was flagged, why it matters, what was checked, what cannot be checked here.

Renders core findings, rule documentation and construct notes as Markdown or
plain text; decides nothing about the code.
"""

from __future__ import annotations

import re

from gap_ls.core.model import Finding
from gap_ls.core.notes import Note
from gap_ls.core.ruledocs import RuleDoc, doc_url


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def finding_hover(findings: list[Finding], docs: dict[str, RuleDoc], markdown: bool) -> str:
    parts = [_one_finding(f, docs[f.code], markdown) for f in findings]
    return ("\n\n---\n\n" if markdown else "\n\n").join(parts)


def _one_finding(finding: Finding, doc: RuleDoc, markdown: bool) -> str:
    why = _first_paragraph(doc.section("Why is this bad?"))
    lines = []
    if markdown:
        lines += [f"**{finding.code} {doc.name}** — {doc.title}", "", finding.message, "", f"*Why it matters:* {why}", ""]
        lines += ["**Checked**", *[f"- {fact}" for fact in finding.checked], ""]
        lines += ["**Cannot be verified from this code — check elsewhere**", *[f"- {u}" for u in finding.unverifiable]]
        lines += ["", f"Suppress with a reason: `# gap: ignore[{finding.code}] <why this is safe>` · [rule documentation]({doc_url(finding.code)})"]
    else:
        lines += [f"{finding.code} {doc.name}: {doc.title}", finding.message, f"Why it matters: {why}", "Checked:"]
        lines += [f"  - {fact}" for fact in finding.checked]
        lines += ["Cannot be verified from this code (check elsewhere):", *[f"  - {u}" for u in finding.unverifiable]]
        lines += [f"Suppress with a reason: # gap: ignore[{finding.code}] <why this is safe>"]
    return "\n".join(lines)


def note_hover(note: Note, markdown: bool) -> str:
    if markdown:
        lines = [f"**{note.title}**", "", note.what_it_does, "", "**Cannot be verified from this code — check elsewhere**"]
        lines += [f"- {item}" for item in note.cannot_verify]
    else:
        lines = [_plain(note.title), note.what_it_does, "Cannot be verified from this code (check elsewhere):"]
        lines += [f"  - {_plain(item)}" for item in note.cannot_verify]
    return "\n".join(lines)


def rule_hover(doc: RuleDoc, markdown: bool) -> str:
    cannot = doc.section("What gap-ls cannot verify")
    if markdown:
        return f"**{doc.code} {doc.name}** — {doc.title}\n\n{doc.summary}\n\n**What gap-ls cannot verify**\n\n{cannot}"
    return f"{doc.code} {doc.name}: {doc.title}\n{doc.summary}\nWhat gap-ls cannot verify:\n{_plain(cannot)}"


def _plain(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"\1", text)
