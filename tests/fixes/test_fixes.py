"""Every fix on every positive in the rule fixtures: it compiles, the finding goes away, a second
application changes nothing, and no user code is lost."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from gap_ls.core.engine import analyze
from gap_ls.core.model import Finding, TextEdit
from gap_ls.core.settings import Settings
from gap_ls.fixes import SUPPRESS, FixContext, FixNotApplicable, actions_for, compute_edits
from gap_ls.fixes.edits import apply_edits
from tests.rules.test_fixtures import FIXTURES, load_fixture


def cases():
    for fixture in sorted(FIXTURES.glob("GAP*.py")):
        source, _ = load_fixture(fixture)
        for finding in analyze(source, Settings(select=(fixture.stem,))).findings:
            for action in actions_for(finding):
                yield pytest.param(source, finding, action.kind, id=f"{fixture.stem}:{finding.span.start.line + 1}:{action.kind}")


def shift_of(edits: list[TextEdit], line: int) -> int:
    """How many lines the edits insert above ``line``."""
    shift = 0
    for edit in edits:
        if edit.span.end.line <= line:
            removed = edit.span.end.line - edit.span.start.line
            shift += edit.new_text.count("\n") - removed
    return shift


def same_code(findings, code):
    return [f for f in findings if f.code == code]


@pytest.mark.parametrize(("source", "finding", "kind"), list(cases()))
def test_fix(source: str, finding: Finding, kind: str):
    try:
        edits = compute_edits(source, finding, kind)
    except FixNotApplicable as exc:
        pytest.fail(f"fix {kind} not applicable: {exc}")
    assert edits, "the fix changed nothing"
    # The editor's path (units and summary from the analysis, no whole-file parse) agrees.
    analysis = analyze(source)
    assert compute_edits(source, finding, kind, FixContext(analysis.units, analysis.summary)) == edits
    fixed = apply_edits(source, edits)
    compile(fixed, "fixed.py", "exec")
    before = analyze(source, Settings(select=(finding.code,)))
    after = analyze(fixed, Settings(select=(finding.code,)))
    if finding.family.value == "race":
        # A race fix may settle more than its own finding (hoisting a lock to the one the other
        # writers hold also ends their inconsistent locking), or turn another writer of the same
        # state from "no lock" (GAP201) into "not the lock the others hold" (GAP202); the family
        # as a whole never grows.
        family = Settings(select=("race",))
        assert len(same_code(after.findings, finding.code)) < len(same_code(before.findings, finding.code))
        assert len(analyze(fixed, family).findings) < len(analyze(source, family).findings)
    else:
        assert len(same_code(after.findings, finding.code)) == len(same_code(before.findings, finding.code)) - 1
    if kind == SUPPRESS:
        assert len(after.suppressed) == len(before.suppressed) + 1
    assert "TODO(gap-ls)" in fixed
    # No user code disappears: every word of the original is still in the file (code or the
    # TODO comment that records what a fix replaced).
    missing = Counter(re.findall(r"\w+", source)) - Counter(re.findall(r"\w+", fixed))
    assert not missing, missing
    # Applying the same fix to the fixed text is a no-op.
    moved = finding.shifted(shift_of(edits, finding.span.start.line))
    again = compute_edits(fixed, moved, kind)
    assert again == [], again


def test_fix_keeps_non_ascii_text_and_positions():
    source = (
        "import logging\n"
        "log = logging.getLogger('café ☕')\n"
        "def load(path):  # résumé 😀\n"
        "    try:\n"
        "        return read(path)  # naïve\n"
        "    except Exception:\n"
        "        log.warning('échec 😀')\n"
        "        return None\n"
    )
    [finding] = analyze(source).findings
    edits = compute_edits(source, finding, "reraise")
    fixed = apply_edits(source, edits)
    assert "log.exception('échec 😀')" in fixed
    assert "raise  # TODO(gap-ls): was `return None`" in fixed
    assert fixed.splitlines()[2] == "def load(path):  # résumé 😀"
    assert analyze(fixed).findings == ()


def test_suppress_extends_an_existing_comment():
    source = "def f(order):\n    executor.submit(charge, order)  # gap: ignore[GAP101] x\n"
    [finding] = [f for f in analyze(source).findings if f.code == "GAP104"]
    fixed = apply_edits(source, compute_edits(source, finding, SUPPRESS))
    assert "# gap: ignore[GAP101, GAP104] x" in fixed


def test_suppress_refuses_a_line_that_continues_inside_a_string():
    source = 'def f():\n    executor.submit(charge, """\n    text""")\n'
    [finding] = analyze(source).findings
    with pytest.raises(FixNotApplicable, match="cannot go at the end of this line"):
        compute_edits(source, finding, SUPPRESS)
