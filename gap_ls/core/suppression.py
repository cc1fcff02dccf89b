"""Inline suppressions: `# gap: ignore[GAP101] reason` (written) and `# noqa: GAP101` (read only).

Finds suppression comments (real comments, not text inside strings), applies
them to findings on the same line, and reports the ones that silence nothing
as GAP001. `# noqa` is read for familiarity but gap-ls never writes it: ruff's
unused-noqa fix deletes codes it does not know.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from gap_ls.core.model import Finding, Span, Suppression
from gap_ls.core.source import split_lines

# A directive starts the comment or follows whitespace after another directive, so a comment
# that quotes the syntax in backticks is not one.
_GAP_IGNORE = re.compile(r"(?<!\S)#\s*gap:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?(?P<reason>.*)$")
_NOQA = re.compile(r"(?<!\S)#\s*noqa\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*)(?P<reason>.*)$", re.IGNORECASE)
_CODE = re.compile(r"^GAP\d{3}$")
# Cheap pre-check so files without suppressions are never tokenized.
_CANDIDATE = re.compile(r"gap:\s*ignore|noqa\s*:[^#\n]*GAP", re.IGNORECASE)


def find_suppressions(text: str, lines: Sequence[str] | None = None) -> list[Suppression]:
    """Suppression comments in ``text`` (``lines``: its lines, if the caller has them split)."""
    # Every directive names "gap" in some case; a substring test is far cheaper than the regex.
    if "gap" not in text.lower() or not _CANDIDATE.search(text):
        return []
    if lines is None:
        lines = split_lines(text)
    comments = _comments(text, lines)
    found: list[Suppression] = []
    for line, column, comment in comments:
        suppression = _parse_comment(comment, line, column)
        if suppression is not None:
            found.append(suppression)
    return found


def _comments(text: str, lines: Sequence[str]) -> list[tuple[int, int, str]]:
    """(0-based line, column, text) of every comment that could be a suppression."""
    candidates = {i for i, line in enumerate(lines) if _CANDIDATE.search(line)}
    found: list[tuple[int, int, str]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT and token.start[0] - 1 in candidates:
                found.append((token.start[0] - 1, token.start[1], token.string))
    except (tokenize.TokenError, SyntaxError):
        # The file parsed with ast before we got here, so this is unexpected; fall back
        # to the last '#' on each candidate line rather than dropping suppressions.
        for index in sorted(candidates):
            column = lines[index].rfind("#")
            found.append((index, column, lines[index][column:].rstrip("\r\n")))
    return found


def _parse_comment(comment: str, line: int, column: int) -> Suppression | None:
    # One comment can hold several directives: a noqa for ruff, then ours.
    for pattern, style in ((_GAP_IGNORE, "gap"), (_NOQA, "noqa")):
        match = pattern.search(comment)
        if match is None:
            continue
        raw_codes = match.group("codes")
        codes = tuple(c.strip().upper() for c in re.split(r"[\s,]+", raw_codes or "") if c.strip())
        if style == "noqa":
            codes = tuple(c for c in codes if c.startswith("GAP"))
            if not codes:
                continue
        reason = match.group("reason").strip()
        # A trailing directive for another tool is not part of the reason.
        reason = reason.split("#", 1)[0].strip()
        start = column + match.start()
        span = Span.of(line, start, line, column + len(comment.rstrip()))
        return Suppression(line=line, codes=codes, reason=reason, style=style, span=span)
    return None


@dataclass(frozen=True)
class SuppressionResult:
    findings: list[Finding]
    suppressed: list[Finding]
    unused: list[tuple[Suppression, str]]  # (suppression, why it is unused)


def apply_suppressions(
    findings: Iterable[Finding], suppressions: Sequence[Suppression], enabled_codes: frozenset[str], known_codes: frozenset[str]
) -> SuppressionResult:
    """Split findings into kept and suppressed; list suppressions (or codes) that did nothing."""
    by_line: dict[int, list[Suppression]] = {}
    for suppression in suppressions:
        by_line.setdefault(suppression.line, []).append(suppression)
    used: set[tuple[int, str]] = set()
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for finding in findings:
        match = _matching(finding, by_line)
        if match is None:
            kept.append(finding)
        else:
            used.add((id(match), finding.code))
            suppressed.append(replace(finding, suppressed_by=match))
    unused: list[tuple[Suppression, str]] = []
    for suppression in suppressions:
        if not suppression.codes:
            unused.append((suppression, "names no rule code; write `# gap: ignore[GAPnnn] reason`"))
            continue
        for code in suppression.codes:
            if not _CODE.match(code) or code not in known_codes:
                unused.append((suppression, f"names unknown rule code {code}"))
            elif code in enabled_codes and (id(suppression), code) not in used:
                unused.append((suppression, f"suppresses {code}, which is not reported here"))
    return SuppressionResult(kept, suppressed, unused)


def _matching(finding: Finding, by_line: dict[int, list[Suppression]]) -> Suppression | None:
    for line in sorted(finding.suppression_lines()):
        for suppression in by_line.get(line, ()):
            if finding.code in suppression.codes:
                return suppression
    return None
