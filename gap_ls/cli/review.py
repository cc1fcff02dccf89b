"""`gap-ls review`: what a change did, what it made risky, and what cannot be verified.

Reads the changed Python files from git (`--base REV`, default `HEAD`: the uncommitted work;
`--staged`: the index, for a pre-commit hook), reviews each with ``gap_ls.core.review`` and
renders the three sections — Changed, Risky, Could not verify — after a one-line Checked
summary, plus what was already there (pre-existing). Exit codes: 1 when the change introduces
a risk at or above `--fail-on`; 0 otherwise; 2 when it cannot run (not a git repository, an
unknown revision).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gap_ls.cli import git
from gap_ls.cli.files import SettingsResolver
from gap_ls.cli.output import FileResult, render_sarif
from gap_ls.core import registry
from gap_ls.core.model import Finding, Severity
from gap_ls.core.review import FileReview, Risk, as_finding, change_notes, review_file
from gap_ls.core.ruledocs import doc_url
from gap_ls.core.settings import ConfigError
from gap_ls.core.source import SourceDecodeError, decode_source

EXIT_CLEAN, EXIT_RISK, EXIT_ERROR = 0, 1, 2
SEVERITY_RANK = {Severity.HINT: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}
FAIL_ON = {"hint": 0, "info": 1, "warning": 2, "error": 3, "never": 99}


def add_parser(commands: argparse._SubParsersAction) -> None:
    review = commands.add_parser("review", help="review a change: what changed, what is risky, what cannot be verified")
    review.add_argument("paths", nargs="*", metavar="PATH", help="limit the review to these files or folders")
    review.add_argument("--base", default=None, help="compare with this revision (default: HEAD)")
    review.add_argument("--staged", action="store_true", help="review what is staged (the index) against HEAD")
    review.add_argument("--format", choices=("text", "markdown", "json", "sarif"), default="text")
    review.add_argument("--fail-on", choices=tuple(FAIL_ON), default="warning",
                        help="exit 1 when the change introduces a risk of this severity or above (default: warning)")
    review.add_argument("--config", type=Path, help="use this pyproject.toml instead of the nearest one")


@dataclass
class Review:
    root: Path
    base: str  # as given
    commit: str
    files: list[FileReview]
    rules_run: int
    notes: list[str]

    @property
    def risks(self) -> list[tuple[FileReview, Risk]]:
        return [(f, r) for f in self.files for r in f.risks]


def run_review(args: argparse.Namespace) -> int:
    try:
        review = collect(Path.cwd(), args.base, args.staged, args.paths, args.config)
    except (git.GitError, ConfigError) as exc:
        print(f"gap-ls review: {exc}", file=sys.stderr)
        return EXIT_ERROR
    render = {"text": render_text, "markdown": render_markdown, "json": render_json, "sarif": render_review_sarif}
    sys.stdout.write(render[args.format](review))
    threshold = FAIL_ON[args.fail_on]
    risky = any(SEVERITY_RANK[r.severity] >= threshold for _, r in review.risks)
    return EXIT_RISK if risky else EXIT_CLEAN


def collect(cwd: Path, base: str | None, staged: bool, paths: Sequence[str], config: Path | None = None) -> Review:
    root = git.toplevel(cwd)
    revision = base or "HEAD"
    commit = git.resolve(root, revision)
    wanted = [_relative(root, cwd, p) for p in paths]
    resolver = SettingsResolver(config_file=config)
    files = []
    changed = [c for c in git.changed_files(root, revision, staged) if _selected(c.path, wanted)]
    for change in sorted(changed, key=lambda c: c.path):
        settings = resolver.for_path((root / change.path).absolute())
        try:
            base_text = _decoded(git.show(root, commit, change.base_path)) if change.base_path else None
            if change.deleted:
                new_text = None
            elif staged:
                new_text = _decoded(git.show(root, ":", change.path))
            else:
                new_text = _read(root / change.path)
        except SourceDecodeError as exc:
            files.append(FileReview(change.path, "modified", error=f"cannot be decoded ({exc}): not compared"))
            continue
        files.append(review_file(change.path, base_text, new_text, settings))
    tests_changed = any(_is_test(c.path) for c in changed)
    rules = len([r for r in registry.all_rules() if not r.meta])
    return Review(root, revision, commit, files, rules, change_notes(files, tests_changed))


def _relative(root: Path, cwd: Path, path: str) -> str:
    try:
        return (cwd / path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise git.GitError(f"{path} is outside the repository at {root}") from None


def _selected(path: str, wanted: Sequence[str]) -> bool:
    return not wanted or any(w in (".", "") or path == w or path.startswith(w.rstrip("/") + "/") for w in wanted)


def _is_test(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return "tests" in parts or "test" in parts or name.startswith("test_") or name.endswith("_test.py")


def _decoded(data: str | None) -> str | None:
    """Source text as the interpreter would read it; SourceDecodeError if it is not text."""
    return None if data is None else decode_source(data.encode("utf-8", "surrogateescape"))


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise git.GitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_source(data)


# -- text -----------------------------------------------------------------------------------------


def _checked_line(review: Review) -> str:
    functions = sum(f.functions_compared for f in review.files)
    return (f"Checked: {len(review.files)} changed Python file(s) against {review.base} ({review.commit[:10]}), "
            f"{functions} function(s) compared, {review.rules_run} rules run")


def _where(file: FileReview, line: int | None) -> str:
    return f"{file.path}:{line + 1}" if line is not None else file.path


def render_text(review: Review) -> str:
    out = [_checked_line(review), "", "Changed"]
    changed = [(f, c) for f in review.files for c in f.changes]
    out += [f"  {_where(f, c.line if c.line is not None else c.base_line)}  {c.qualname}: {c.what}"
            for f, c in changed] or ["  (no function-level changes)"]
    out += [f"  {f.path}: {f.error}" for f in review.files if f.error]
    out += ["", "Risky"]
    for file, risk in review.risks:
        base = f" (base line {risk.base_line + 1}: {risk.base_snippet})" if risk.base_line is not None else ""
        out.append(f"  {_where(file, risk.line)}  {risk.code} {risk.message}{base}")
    if not review.risks:
        out.append("  nothing this change introduces")
    out += ["", "Could not verify"]
    notes = [f"  - {risk.code} at {_where(file, risk.line)}: {note}" for file, risk in review.risks for note in risk.unverifiable]
    out += notes + [f"  - {note}" for note in review.notes] or ["  (nothing further)"]
    preexisting = [(f, p) for f in review.files for p in f.preexisting]
    if preexisting:
        out += ["", "Pre-existing (already there before this change)"]
        out += [f"  {_where(f, p.span.start.line)}  {p.code} {p.message}" for f, p in preexisting]
    return "\n".join(out) + "\n"


# -- markdown (a pull-request comment) -------------------------------------------------------------


def render_markdown(review: Review) -> str:
    risks = review.risks
    out = ["## gap-ls review", "", f"**Checked:** {_checked_line(review).removeprefix('Checked: ')}", ""]
    out += ["### Changed", ""]
    by_file: dict[str, list[str]] = {}
    for file in review.files:
        for change in file.changes:
            line = change.line if change.line is not None else change.base_line
            by_file.setdefault(file.path, []).append(f"- `{change.qualname}` (line {line + 1 if line is not None else '?'}): {change.what}")
    for path, items in by_file.items():
        out += [f"<details><summary><code>{path}</code>: {len(items)} change(s)</summary>", "", *items, "", "</details>", ""]
    if not by_file:
        out += ["No function-level changes.", ""]
    out += [f"### Risky ({len(risks)})", ""]
    for file, risk in risks:
        base = f" — was `{risk.base_snippet}` (base line {risk.base_line + 1})" if risk.base_line is not None else ""
        out.append(f"- **[{risk.code}]({doc_url(risk.code)})** `{_where(file, risk.line)}` in `{risk.qualname}`: "
                   f"{risk.message}{base}")
    if not risks:
        out.append("Nothing this change introduces.")
    out += ["", "### Could not verify", ""]
    for file, risk in risks:
        if risk.unverifiable:
            out += [f"<details><summary>{risk.code} at <code>{_where(file, risk.line)}</code></summary>", ""]
            out += [f"- {note}" for note in risk.unverifiable] + ["", "</details>", ""]
    out += [f"- {note}" for note in review.notes]
    if not review.notes and not any(r.unverifiable for _, r in risks):
        out.append("Nothing further.")
    preexisting = [(f, p) for f in review.files for p in f.preexisting]
    if preexisting:
        out += ["", f"<details><summary>Pre-existing findings ({len(preexisting)}), not introduced by this change</summary>", ""]
        out += [f"- [{p.code}]({doc_url(p.code)}) `{_where(f, p.span.start.line)}`: {p.message}" for f, p in preexisting]
        out += ["", "</details>"]
    return "\n".join(out).rstrip() + "\n"


# -- json and SARIF --------------------------------------------------------------------------------


def render_json(review: Review) -> str:
    def risk(file: FileReview, r: Risk) -> dict:
        return {"path": file.path, "code": r.code, "severity": r.severity.value, "function": r.qualname,
                "message": r.message, "line": r.line + 1,
                "base_line": r.base_line + 1 if r.base_line is not None else None, "base_snippet": r.base_snippet,
                "unverifiable": list(r.unverifiable), "kind": "introduced" if r.finding is not None else "regression"}

    data = {
        "base": review.base,
        "commit": review.commit,
        "checked": {"files": len(review.files), "functions_compared": sum(f.functions_compared for f in review.files),
                    "rules_run": review.rules_run},
        "changed": [{"path": f.path, "status": f.status, "function": c.qualname, "what": c.what,
                     "line": c.line + 1 if c.line is not None else None,
                     "base_line": c.base_line + 1 if c.base_line is not None else None}
                    for f in review.files for c in f.changes],
        "risky": [risk(f, r) for f, r in review.risks],
        "could_not_verify": review.notes,
        "preexisting": [{"path": f.path, **p.to_json()} for f in review.files for p in f.preexisting],
        "errors": [{"path": f.path, "message": f.error} for f in review.files if f.error],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_review_sarif(review: Review) -> str:
    """SARIF with the risks this change introduces only (what a code-scanning upload should flag)."""
    results = []
    for file in review.files:
        findings = tuple(_as_finding(r) for r in file.risks)
        if findings:
            results.append(FileResult(file.path, findings, ()))
    return render_sarif(results, [(f.path, f.error) for f in review.files if f.error], review.root)


def _as_finding(risk: Risk) -> Finding:
    return as_finding(risk, base_name="the base version")
