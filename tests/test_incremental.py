"""The incremental document gives the same findings as a fresh analysis, after every edit.

GAP_LS_EXAMPLES=400 runs the property test longer than CI does."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gap_ls.core.document import AnalysisDocument
from gap_ls.core.settings import Settings
from gap_ls.core.source import split_lines
from tests.conftest import ROOT

FILES = sorted([*(ROOT / "tests" / "corpus").rglob("*.py"), *(ROOT / "examples").glob("*.py")])
TEXTS = {path: path.read_text(encoding="utf-8") for path in FILES}
SNIPPETS = [
    "x",
    "(",
    ")",
    ":",
    "\n",
    "    ",
    "#",
    '"',
    "'''",
    "\n    pass\n",
    "\ndef added():\n    return 1\n",
    "\n    def method(self):\n        try:\n            run()\n        except Exception:\n            return None\n",
    "\nclass Added:\n    lock = None\n",
    "try:\n    import ujson\nexcept Exception:\n    pass\n",
    "@decorator\n",
    "\n\n",
    "except Exception:\n",
    "@retry(stop=stop_after_attempt(3))\n",
    "idempotency_key=key, ",
    "\n    requests.post(url, json=body)\n",
]


@st.composite
def edit(draw, text: str):
    kind = draw(st.sampled_from(["insert", "delete", "copy-line", "delete-line"]))
    lines = split_lines(text)
    if kind == "insert" or not lines:
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
    if kind == "delete":
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        return text[:at] + text[at + draw(st.integers(1, 30)) :]
    source = draw(st.integers(0, len(lines) - 1))
    target = draw(st.integers(0, len(lines)))
    if kind == "copy-line":
        return "".join(lines[:target] + [lines[source]] + lines[target:])
    return "".join(lines[:source] + lines[source + 1 :])


@settings(max_examples=int(os.environ.get("GAP_LS_EXAMPLES", "50")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(FILES), st.data())
def test_incremental_equals_fresh(path: Path, data):
    text = TEXTS[path]
    document = AnalysisDocument.build(text, Settings())
    for _ in range(data.draw(st.integers(1, 4))):
        text = data.draw(edit(text))
        incremental = document.update(split_lines(text))
        fresh = AnalysisDocument.build(text, Settings())
        assert [s.text for s in document.segments] == [s.text for s in fresh.segments]
        assert incremental.findings == fresh.analysis.findings
        assert incremental.suppressed == fresh.analysis.suppressed


def test_an_edit_inside_a_function_reanalyses_only_that_unit():
    text = (ROOT / "examples" / "billing.py").read_text(encoding="utf-8")
    document = AnalysisDocument.build(text, Settings())
    edited = text.replace('logger.error("charge failed: %s", exc)', 'logger.error("charge failed (%s)", exc)')
    analysis = document.update(split_lines(edited))
    assert document.units_analysed == 1
    assert [f.code for f in analysis.findings] == [f.code for f in document.analysis.findings]


def test_a_broken_statement_keeps_its_last_findings_as_stale():
    text = (ROOT / "examples" / "billing.py").read_text(encoding="utf-8")
    document = AnalysisDocument.build(text, Settings())
    before = {f.code for f in document.analysis.findings}
    broken = text.replace("def charge_invoice(invoice: dict) -> bool:", "def charge_invoice(invoice: dict) -> bool")
    analysis = document.update(split_lines(broken))
    assert analysis.parse_failed
    assert [f.code for f in analysis.stale] == ["GAP106"] and "GAP106" in before
    assert "GAP106" not in {f.code for f in analysis.findings}
    repaired = document.update(split_lines(text))
    assert repaired.stale == () and {f.code for f in repaired.findings} == before


RACE_MODULE = """import threading

hits = 0


def record():
    global hits
    hits += 1


def start():
    pass
"""


def test_starting_a_thread_elsewhere_flags_the_function_it_reaches():
    """Whether `record` runs on threads is decided by another unit: an edit there must
    re-analyse `record` (its result depends on the concurrency model), in both directions."""
    race = Settings(select=("race",))
    document = AnalysisDocument.build(RACE_MODULE, race)
    assert document.analysis.findings == ()
    started = RACE_MODULE.replace(
        "def start():\n    pass\n", "def start():\n    for _ in range(4):\n        threading.Thread(target=record).start()\n"
    )
    analysis = document.update(split_lines(started))
    assert [f.code for f in analysis.findings] == ["GAP201"]
    assert analysis.findings == AnalysisDocument.build(started, race).analysis.findings
    assert document.update(split_lines(RACE_MODULE)).findings == ()


IDEMPOTENCY_MODULE = """\
import requests
from tenacity import retry, stop_after_attempt


@retry(stop=stop_after_attempt(3))
def sync(order):
    return _push(order)


def _push(order):
    return requests.put(f"https://api/orders/{order.id}", json=order.as_dict())
"""


def test_a_helper_that_starts_posting_flags_the_retried_caller():
    """`sync` is retried and calls `_push`, another unit: when `_push` turns its PUT into a POST,
    `sync` must be re-analysed (its result depends on what `_push` does), in both directions."""
    idempotency = Settings(select=("idempotency",))
    document = AnalysisDocument.build(IDEMPOTENCY_MODULE, idempotency)
    assert document.analysis.findings == ()
    posting = IDEMPOTENCY_MODULE.replace("requests.put(", "requests.post(")
    analysis = document.update(split_lines(posting))
    assert [(f.code, f.span.start.line) for f in analysis.findings] == [("GAP301", 6)]
    assert "in `_push()`" in analysis.findings[0].message
    assert analysis.findings == AnalysisDocument.build(posting, idempotency).analysis.findings
    assert document.update(split_lines(IDEMPOTENCY_MODULE)).findings == ()
