"""`# gap: ignore[...]`, `# noqa: GAP...` and unused suppressions (GAP001)."""

from __future__ import annotations

import textwrap

from gap_ls.core.engine import analyze
from gap_ls.core.settings import Settings

BASE = textwrap.dedent(
    """\
    def load(path):
        try:
            return read(path)
        except Exception:{comment}
            return None
    """
)


def codes(source: str, settings: Settings | None = None) -> list[tuple[int, str]]:
    return [(f.span.start.line + 1, f.code) for f in analyze(source, settings or Settings()).findings]


def test_unsuppressed():
    assert codes(BASE.format(comment="")) == [(4, "GAP102")]


def test_gap_ignore_with_reason():
    analysis = analyze(BASE.format(comment="  # gap: ignore[GAP102] callers check for None"))
    assert analysis.findings == ()
    [suppressed] = analysis.suppressed
    assert suppressed.suppressed_by.reason == "callers check for None"


def test_noqa_is_read():
    assert codes(BASE.format(comment="  # noqa: BLE001, GAP102")) == []


def test_bare_noqa_does_not_silence_gap_ls():
    assert codes(BASE.format(comment="  # noqa")) == [(4, "GAP102")]


def test_suppression_on_the_construct_start_line():
    source = "def f(order):\n    executor.submit(  # gap: ignore[GAP104] fire and forget by design\n        charge,\n        order,\n    )\n"
    assert codes(source) == []


def test_wrong_code_does_not_suppress_and_is_unused():
    assert sorted(codes(BASE.format(comment="  # gap: ignore[GAP101] wrong code"))) == [(4, "GAP001"), (4, "GAP102")]


def test_unused_unknown_and_empty_suppressions():
    source = "x = 1  # gap: ignore[GAP102] stale\ny = 2  # gap: ignore[GAP999]\nz = 3  # gap: ignore\n"
    findings = analyze(source).findings
    assert [(f.span.start.line + 1, f.code) for f in findings] == [(1, "GAP001"), (2, "GAP001"), (3, "GAP001")]
    assert "not reported here" in findings[0].message
    assert "unknown rule code GAP999" in findings[1].message
    assert "names no rule code" in findings[2].message


def test_suppression_of_a_disabled_rule_is_not_unused():
    source = "x = 1  # gap: ignore[GAP102] stale\n"
    assert codes(source, Settings(ignore=("GAP102",))) == []


def test_directive_inside_a_string_is_not_a_suppression():
    source = 'HELP = "write # gap: ignore[GAP102] to silence"\n'
    assert codes(source) == []


def test_directive_quoted_in_a_comment_is_not_a_suppression():
    source = "x = 1  # the syntax is `# gap: ignore[GAP101]`\n"
    assert codes(source) == []
