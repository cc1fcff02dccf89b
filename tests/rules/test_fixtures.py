"""Each rule's fixture: lines ending in `# expect: CODE[, CODE]` must be flagged, no other line may be.

The fixture files live in tests/rules/fixtures/<CODE>.py and hold positives and
near-misses side by side (flake8-bugbear's format). The expectation comments
are blanked out before analysis so that they cannot act as explanatory
comments in the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gap_ls.core.engine import analyze
from gap_ls.core.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
EXPECT = re.compile(r"\s*# expect: (?P<codes>GAP\d{3}(?:\s*,\s*GAP\d{3})*)\s*$")


def load_fixture(path: Path) -> tuple[str, set[tuple[int, str]]]:
    expected: set[tuple[int, str]] = set()
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True), start=1):
        match = EXPECT.search(line)
        if match:
            for code in re.split(r"\s*,\s*", match.group("codes")):
                expected.add((number, code))
            ending = line[len(line.rstrip("\r\n")) :]
            line = line[: match.start()] + ending
        lines.append(line)
    return "".join(lines), expected


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("GAP*.py")), ids=lambda p: p.stem)
def test_fixture(fixture: Path) -> None:
    source, expected = load_fixture(fixture)
    analysis = analyze(source, Settings(select=(fixture.stem,)))
    found = {(f.span.start.line + 1, f.code) for f in analysis.findings}
    assert found == expected, (
        f"missing: {sorted(expected - found)}\nunexpected: {sorted(found - expected)}\n"
        + "\n".join(f"{f.span.start.line + 1}: {f.code} {f.message}" for f in analysis.findings)
    )


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("GAP1*.py")), ids=lambda p: p.stem)
def test_fixture_positives_only_draw_their_own_family(fixture: Path) -> None:
    """With every rule on, a handler is claimed by one rule only (no double reports on one line)."""
    source, _ = load_fixture(fixture)
    analysis = analyze(source, Settings())
    lines = [f.span.start.line for f in analysis.findings if f.family.value == "swallowed-error"]
    assert len(lines) == len(set(lines)), [(f.span.start.line + 1, f.code) for f in analysis.findings]


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("GAP1*.py")), ids=lambda p: p.stem)
def test_suppressed_cases_are_silent_and_used(fixture: Path) -> None:
    source, _ = load_fixture(fixture)
    analysis = analyze(source, Settings())
    assert not [f for f in analysis.findings if f.code == "GAP001"]
    for finding in analysis.suppressed:
        assert finding.suppressed_by is not None and finding.suppressed_by.reason
