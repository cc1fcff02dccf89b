"""Precision and recall of gap-ls on the labelled corpus in tests/corpus/.

Runs the real command line (`python -m gap_ls check --format json`) over the
corpus, attributes each finding to the innermost enclosing function, and
compares with tests/corpus/labels.toml (see tests/corpus/README.md). Prints a
table per family, per rule and per style, then one machine-readable JSON line.

    python benchmarks/quality.py [--corpus tests/corpus] [--show-misses]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
FAMILY_OF_PREFIX = {"GAP1": "swallowed-error", "GAP2": "race", "GAP3": "idempotency"}


def family(code: str) -> str:
    return FAMILY_OF_PREFIX.get(code[:4], "meta")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 3), "recall": round(self.recall, 3)}


@dataclass
class Report:
    families: dict[str, Score] = field(default_factory=lambda: defaultdict(Score))
    rules: dict[str, Score] = field(default_factory=lambda: defaultdict(Score))
    styles: dict[str, Score] = field(default_factory=lambda: defaultdict(Score))
    misses: list[str] = field(default_factory=list)
    positives: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    near_misses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    style_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def functions_of(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every def, 1-based lines."""
    spans: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}" if prefix else child.name
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    spans.append((first, child.end_lineno or child.lineno, name))
                visit(child, name)
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return spans


def enclosing(spans: list[tuple[int, int, str]], line: int) -> str:
    best = "<module>"
    best_size = None
    for first, last, name in spans:
        if first <= line <= last and (best_size is None or last - first < best_size):
            best, best_size = name, last - first
    return best


def run_gap_ls(corpus: Path) -> list[dict]:
    command = [sys.executable, "-m", "gap_ls", "check", "--format", "json", "--exit-zero", str(corpus)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"gap-ls failed ({completed.returncode}):\n{completed.stderr}")
    return [f for f in json.loads(completed.stdout) if "suppressed" not in f]


def score(corpus: Path) -> Report:
    labels = tomllib.loads((corpus / "labels.toml").read_text(encoding="utf-8"))["case"]
    findings = run_gap_ls(corpus)
    expected: dict[tuple[str, str], set[str]] = {}
    style_of: dict[tuple[str, str], str] = {}
    for case in labels:
        key = (case["file"], case["function"])
        expected[key] = set(case["expect"])
        style_of[key] = case.get("style", "?")
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    spans_by_file: dict[str, list[tuple[int, int, str]]] = {}
    for finding in findings:
        path = Path(finding["path"])
        relative = (ROOT / path).resolve().relative_to(corpus.resolve()).as_posix()
        if relative not in spans_by_file:
            spans_by_file[relative] = functions_of((corpus / relative).read_text(encoding="utf-8"))
        function = enclosing(spans_by_file[relative], finding["location"]["line"])
        found[(relative, function)].add(finding["code"])
    report = Report()
    for key in sorted(set(expected) | set(found)):
        want = expected.get(key, set())
        got = found.get(key, set())
        style = style_of.get(key, "unlabelled")
        for code in want:
            report.positives[family(code)] += 1
        if key in expected and not expected[key]:
            report.near_misses[_file_family(key[0])] += 1
        for code in want | got:
            hit = code in want and code in got
            rule = report.rules[code]
            if hit:
                rule.tp += 1
                report.styles[style].tp += 1
            elif code in got:
                rule.fp += 1
                report.styles[style].fp += 1
                report.misses.append(f"false positive {code} in {key[0]}::{key[1]}")
            else:
                rule.fn += 1
                report.styles[style].fn += 1
                report.misses.append(f"missed {code} in {key[0]}::{key[1]}")
        for fam in {family(c) for c in want | got}:
            want_f = {family(c) for c in want}
            got_f = {family(c) for c in got}
            target = report.families[fam]
            if fam in want_f and fam in got_f:
                target.tp += 1
            elif fam in got_f:
                target.fp += 1
            else:
                target.fn += 1
        if want:
            report.style_names[family(next(iter(want)))].add(style)
    return report


def _file_family(relative: str) -> str:
    folder = relative.split("/", 1)[0].replace("_", "-")
    return folder if folder in FAMILY_OF_PREFIX.values() else "?"


def render(report: Report) -> str:
    lines = ["family            positives  near-misses  styles  TP  FP  FN  precision  recall"]
    for fam, s in sorted(report.families.items()):
        lines.append(
            f"{fam:<17} {report.positives[fam]:>9}  {report.near_misses[fam]:>11}  {len(report.style_names[fam]):>6}"
            f"  {s.tp:>2}  {s.fp:>2}  {s.fn:>2}  {s.precision:>9.3f}  {s.recall:>6.3f}"
        )
    lines += ["", "rule     TP  FP  FN  precision  recall"]
    for code, s in sorted(report.rules.items()):
        lines.append(f"{code}  {s.tp:>3} {s.fp:>3} {s.fn:>3}  {s.precision:>9.3f}  {s.recall:>6.3f}")
    lines += ["", "style        TP  FP  FN  precision  recall"]
    for style, s in sorted(report.styles.items()):
        lines.append(f"{style:<11} {s.tp:>3} {s.fp:>3} {s.fn:>3}  {s.precision:>9.3f}  {s.recall:>6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    parser.add_argument("--show-misses", action="store_true", help="list every false positive and false negative")
    args = parser.parse_args(argv)
    report = score(args.corpus)
    print(render(report))
    if args.show_misses and report.misses:
        print("\n" + "\n".join(report.misses))
    summary = {
        "families": {fam: {**s.as_dict(), "positives": report.positives[fam], "near_misses": report.near_misses[fam],
                           "styles": sorted(report.style_names[fam])} for fam, s in report.families.items()},
        "rules": {code: s.as_dict() for code, s in report.rules.items()},
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
