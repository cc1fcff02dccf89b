"""Whatever text arrives (half-typed code, garbage, deleted lines), analysis answers and never raises."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gap_ls.core.engine import analyze, analyze_bytes
from tests.conftest import ROOT

CORPUS = sorted((ROOT / "tests" / "corpus").rglob("*.py"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text(text):
    analyze(text)


@settings(max_examples=150, deadline=None)
@given(st.binary())
def test_arbitrary_bytes(data):
    analyze_bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), st.data())
def test_corpus_file_with_lines_cut(path: Path, data):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = data.draw(st.integers(0, len(lines) - 1))
    length = data.draw(st.integers(1, 6))
    keep = data.draw(st.integers(0, 40))
    # Cut a few lines and truncate one mid-line: what a buffer looks like while someone types.
    broken = lines[:start] + [lines[start][:keep]] + lines[start + length :]
    analysis = analyze("".join(broken))
    if analysis.parse_failed:
        # One GAP000 for the broken statement; whatever else still parses is still checked.
        assert [f.code for f in analysis.findings].count("GAP000") == 1


def test_half_typed_statement_keeps_the_findings_of_the_rest():
    source = (ROOT / "examples" / "billing.py").read_text(encoding="utf-8")
    full = {(f.code, f.span.start.line) for f in analyze(source).findings}
    broken = source.replace("def charge_invoice(invoice: dict) -> bool:", "def charge_invoice(invoice: dict) -> bool")
    analysis = analyze(broken)
    assert analysis.parse_failed
    codes = [f.code for f in analysis.findings]
    assert codes.count("GAP000") == 1
    kept = {(f.code, f.span.start.line) for f in analysis.findings if f.code != "GAP000"}
    assert kept and kept < full  # the broken function's finding is gone, the others stay where they were
