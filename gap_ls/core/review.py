"""Reviewing a change: what changed in each function, what became risky, what cannot be verified.

``review_file(path, base, new, settings)`` compares two versions of one file (either may be
missing: an added or a deleted file). Functions are matched by qualified name, so code that
moved keeps its identity. For each function it reads, with ``ast``, the facts a reviewer
looks at — exception handlers (what they catch, whether they raise), guards (locks,
`select_for_update()`, `F()`, version checks), retries, side effects and their idempotency
keys — and reports:

- *changes*: those facts, added or removed, per function;
- *risks*: findings of the new version that the base did not have (matched by rule and
  function, not by line), and regressions only a diff can show — GAP191 dropped re-raise,
  GAP192 broadened handler, GAP291 dropped lock, GAP391 dropped idempotency key — each with
  the line in both versions;
- *pre-existing*: findings present in both.

Pure: text in, data out; no git, no LSP.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from gap_ls.core.idempotency import DEFAULT_CATALOGUE, CallReader, Catalogue, ScopeFinder, calls_in, functions_of
from gap_ls.core.model import Finding, Severity
from gap_ls.core.settings import Settings
from gap_ls.core.summary import BROAD_EXCEPTIONS, ModuleSummary, dotted, summarize

_LOCKISH = re.compile(r"lock|mutex|semaphore", re.IGNORECASE)


@dataclass(frozen=True)
class HandlerShape:
    types: tuple[str, ...]  # as written; () for a bare `except:`
    broad: bool
    raises: bool
    line: int  # 0-based

    def label(self) -> str:
        return f"`except {', '.join(self.types)}`" if self.types else "bare `except:`"


@dataclass(frozen=True)
class KeyedCall:
    callee: str
    keyed: bool
    line: int
    label: str


@dataclass(frozen=True)
class FunctionFacts:
    qualname: str
    line: int  # 0-based line of the `def`
    end: int
    handlers: tuple[HandlerShape, ...] = ()
    guards: tuple[tuple[str, int], ...] = ()  # (what, line): "`with self._lock`", "`select_for_update()`"
    mutates: bool = False  # assigns attributes/subscripts/globals, or saves/updates/commits
    retries: tuple[str, ...] = ()  # how it is retried: "`@tenacity.retry`", "a hand-written retry loop"
    effects: tuple[KeyedCall, ...] = ()  # non-idempotent side effects, with or without a key
    shape: str = ""  # the function's code without positions: equal means unchanged


@dataclass(frozen=True)
class Change:
    qualname: str
    what: str
    line: int | None  # in the new version (None: removed function)
    base_line: int | None


@dataclass(frozen=True)
class Risk:
    code: str
    message: str
    severity: Severity
    qualname: str
    line: int  # 0-based, in the new version
    base_line: int | None  # where the guard was, for regressions
    unverifiable: tuple[str, ...]
    finding: Finding | None = None  # for findings the change introduces
    base_snippet: str = ""  # the base version's line, for regressions


@dataclass
class FileReview:
    path: str
    status: str  # "modified", "added", "deleted"
    functions_compared: int = 0
    changes: list[Change] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    preexisting: list[Finding] = field(default_factory=list)
    error: str = ""  # a version that does not parse: nothing compared


# -- facts of one version ---------------------------------------------------------------------------


def function_facts(text: str, catalogue: Catalogue = DEFAULT_CATALOGUE) -> dict[str, FunctionFacts] | None:
    """Facts of every function in ``text`` by qualified name; None if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    summary = summarize(tree)
    finder = ScopeFinder(summary, catalogue)
    found: dict[str, FunctionFacts] = {}
    for function, qualname, class_name in functions_of(tree.body, "", None):
        found[qualname] = facts_of(function, qualname, class_name, summary, catalogue, finder)
    return found


def facts_of(function, qualname: str, class_name: str | None, summary: ModuleSummary,  # type: ignore[no-untyped-def]
             catalogue: Catalogue = DEFAULT_CATALOGUE, finder: ScopeFinder | None = None) -> FunctionFacts:
    """The facts of one function node (``qualname`` in a module with this summary)."""
    finder = finder or ScopeFinder(summary, catalogue)
    body = list(function.body)
    reader = CallReader(summary, catalogue)
    effects = []
    for call in calls_in(body, handlers=True):
        effect = reader.effect(call)
        if effect is not None:
            effects.append(KeyedCall(summary.qualify(dotted(call.func) or "") or effect.label, effect.keyed,
                                     call.lineno - 1, effect.label))
    retries = tuple(scope.how for scope in finder.scopes(function, qualname, class_name) if scope.kind == "retry")
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    return FunctionFacts(
        qualname=qualname,
        line=first - 1,
        end=(function.end_lineno or function.lineno) - 1,
        handlers=tuple(_handlers(body)),
        guards=tuple(_guards(body, summary)),
        mutates=_mutates(body),
        retries=retries,
        effects=tuple(effects),
        shape=ast.dump(function, annotate_fields=False, include_attributes=False),
    )


def _own_nodes(statements: Sequence[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of these statements, not inside nested definitions."""
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _handlers(body: Sequence[ast.stmt]) -> Iterator[HandlerShape]:
    tries = sorted((n for n in _own_nodes(body) if isinstance(n, (ast.Try, getattr(ast, "TryStar", ast.Try)))),
                   key=lambda n: (n.lineno, n.col_offset))
    for node in tries:
        for handler in node.handlers:
            types: tuple[str, ...] = ()
            if handler.type is not None:
                elements = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                types = tuple(ast.unparse(e) for e in elements)
            broad = not types or any(t.split(".")[-1] in BROAD_EXCEPTIONS for t in types)
            raises = any(isinstance(n, ast.Raise) for n in _own_nodes(handler.body))
            yield HandlerShape(types, broad, raises, handler.lineno - 1)


def _guards(body: Sequence[ast.stmt], summary: ModuleSummary) -> Iterator[tuple[str, int]]:
    for node in _own_nodes(body):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                expression = item.context_expr
                name = dotted(expression.func if isinstance(expression, ast.Call) else expression) or ""
                if name in summary.locks or _LOCKISH.search(name.split(".")[-1]):
                    yield (f"`with {ast.unparse(expression)}`", node.lineno - 1)
        elif isinstance(node, ast.Call):
            name = dotted(node.func) or ""
            method = name.rpartition(".")[2] if name else (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if method in ("select_for_update", "with_for_update"):
                yield (f"`{method}()`", node.lineno - 1)
            elif summary.qualify(name) in ("django.db.models.F", "django.db.models.expressions.F"):
                yield ("`F()` atomic update", node.lineno - 1)
            elif method in ("filter", "where", "filter_by") and any(
                "version" in (k.arg or "") for k in node.keywords
            ):
                yield ("a version check", node.lineno - 1)


def _mutates(body: Sequence[ast.stmt]) -> bool:
    for node in _own_nodes(body):
        if isinstance(node, (ast.AugAssign, ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in targets) or isinstance(node, ast.AugAssign):
                return True
        if isinstance(node, ast.Global):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
            "save", "update", "commit", "execute", "incr", "set", "append", "pop"
        ):
            return True
    return False


# -- comparing two versions --------------------------------------------------------------------------


def review_file(
    path: str,
    base: str | None,
    new: str | None,
    settings: Settings | None = None,
    base_findings: Sequence[Finding] | None = None,
    new_findings: Sequence[Finding] | None = None,
) -> FileReview:
    """The review of one file; findings may be passed in (else both versions are analysed)."""
    from gap_ls.core.engine import analyze  # the engine loads libcst: only when findings are needed

    settings = settings or Settings()
    status = "added" if base is None else "deleted" if new is None else "modified"
    review = FileReview(path, status)
    catalogue = Catalogue.extended(settings.retry_decorators, settings.side_effect_calls, settings.key_names)
    before = function_facts(base, catalogue) if base is not None else {}
    after = function_facts(new, catalogue) if new is not None else {}
    if before is None or after is None:
        review.error = f"the {'base' if before is None else 'new'} version does not parse: nothing compared"
        return review
    review.functions_compared = len(set(before) & set(after))
    for qualname in sorted(set(before) | set(after), key=lambda q: (after.get(q) or before[q]).line):
        old, now = before.get(qualname), after.get(qualname)
        changes = list(_changes(qualname, old, now))
        review.changes.extend(sorted(changes, key=lambda c: c.line if c.line is not None else c.base_line or 0))
        if old is not None and now is not None:
            new_lines = (new or "").splitlines()
            review.risks.extend(r for r in _regressions(qualname, old, now, base or "")
                                if _enabled(r.code, settings) and not silenced(r, new_lines))
    if new is None:
        return review
    if base_findings is None:
        base_findings = analyze(base, settings).findings if base is not None else ()
    if new_findings is None:
        new_findings = analyze(new, settings).findings
    introduced, preexisting = split_findings(base_findings, before, new_findings, after)
    review.preexisting = preexisting
    covered = {(f.code[:4], _owner(after, f.span.start.line)) for f in introduced}
    review.risks = [r for r in review.risks if not (r.code == "GAP391" and r.base_line is None
                                                     and ("GAP3", r.qualname) in covered)]
    review.risks.extend(
        Risk(f.code, f.message, f.severity, _owner(after, f.span.start.line), f.span.start.line, None,
             f.unverifiable, f)
        for f in introduced
    )
    review.risks.sort(key=lambda r: (r.line, r.code))
    return review


def silenced(risk: Risk, lines: Sequence[str]) -> bool:
    """A `# gap: ignore[CODE] reason` (or `# noqa: CODE`) on the flagged line silences a regression."""
    from gap_ls.core.suppression import find_suppressions

    if not 0 <= risk.line < len(lines):
        return False
    return any(risk.code in s.codes for s in find_suppressions(lines[risk.line]))


def _enabled(code: str, settings: Settings) -> bool:
    from gap_ls.core import registry

    rule = registry.rule_by_code(code)
    return rule is not None and registry.is_enabled(rule, settings)


def split_findings(
    base_findings: Sequence[Finding], before: dict[str, FunctionFacts],
    new_findings: Sequence[Finding], after: dict[str, FunctionFacts],
) -> tuple[list[Finding], list[Finding]]:
    """(introduced, pre-existing): a finding is pre-existing when the base had one of the same
    rule in the same function (moving code does not make it new)."""
    remaining = Counter((f.code, _owner(before, f.span.start.line)) for f in base_findings)
    introduced, preexisting = [], []
    for finding in sorted(new_findings, key=Finding.sort_key):
        key = (finding.code, _owner(after, finding.span.start.line))
        if remaining[key] > 0:
            remaining[key] -= 1
            preexisting.append(finding)
        else:
            introduced.append(finding)
    return introduced, preexisting


def _owner(functions: dict[str, FunctionFacts], line: int) -> str:
    """The innermost function holding ``line``; "<module>" outside any."""
    best, size = "<module>", None
    for facts in functions.values():
        if facts.line <= line <= facts.end and (size is None or facts.end - facts.line < size):
            best, size = facts.qualname, facts.end - facts.line
    return best


def _changes(qualname: str, old: FunctionFacts | None, now: FunctionFacts | None) -> Iterator[Change]:
    if old is None and now is not None:
        yield Change(qualname, "function added" + _summary_of(now), now.line, None)
        return
    if now is None and old is not None:
        yield Change(qualname, "function removed", None, old.line)
        return
    assert old is not None and now is not None
    if old.shape == now.shape:
        return  # unchanged (perhaps moved)
    for what, line, base_line in _handler_changes(old, now):
        yield Change(qualname, what, line, base_line)
    for guard in sorted({g for g, _ in old.guards} - {g for g, _ in now.guards}):
        yield Change(qualname, f"guard removed: {guard}", None, dict(old.guards)[guard])
    for guard in sorted({g for g, _ in now.guards} - {g for g, _ in old.guards}):
        yield Change(qualname, f"guard added: {guard}", dict(now.guards)[guard], None)
    for how in sorted(set(old.retries) - set(now.retries)):
        yield Change(qualname, f"retry removed: {how}", None, old.line)
    for how in sorted(set(now.retries) - set(old.retries)):
        yield Change(qualname, f"retry added: {how}", now.line, None)
    old_keys = {e.callee: e for e in old.effects}
    for effect in now.effects:
        previous = old_keys.get(effect.callee)
        if previous is not None and previous.keyed and not effect.keyed:
            yield Change(qualname, f"idempotency key removed from {effect.label}", effect.line, previous.line)
        elif previous is not None and not previous.keyed and effect.keyed:
            yield Change(qualname, f"idempotency key added to {effect.label}", effect.line, previous.line)
        elif previous is None and now.retries:
            yield Change(qualname, f"side effect added inside retried code: {effect.label}", effect.line, None)


def _summary_of(facts: FunctionFacts) -> str:
    parts = []
    if facts.handlers:
        parts.append(f"{len(facts.handlers)} handler(s)")
    if facts.retries:
        parts.append("retried by " + ", ".join(facts.retries))
    if facts.effects:
        parts.append(f"{len(facts.effects)} side effect(s)")
    return f" ({'; '.join(parts)})" if parts else ""


def _paired_handlers(old: FunctionFacts, now: FunctionFacts) -> list[tuple[HandlerShape | None, HandlerShape | None]]:
    """Handlers of the two versions paired: by position when their number is the same, else by
    what they catch; the rest were added or removed."""
    if len(old.handlers) == len(now.handlers):
        return list(zip(old.handlers, now.handlers))
    pairs: list[tuple[HandlerShape | None, HandlerShape | None]] = []
    unmatched = list(now.handlers)
    for handler in old.handlers:
        match = next((h for h in unmatched if h.types == handler.types), None)
        if match is not None:
            unmatched.remove(match)
        pairs.append((handler, match))
    pairs.extend((None, h) for h in unmatched)
    return pairs


def _handler_changes(old: FunctionFacts, now: FunctionFacts) -> Iterator[tuple[str, int | None, int | None]]:
    for before, after in _paired_handlers(old, now):
        if before is None and after is not None:
            yield f"handler added: {after.label()}" + (" (re-raises)" if after.raises else " (does not raise)"), after.line, None
        elif after is None and before is not None:
            yield f"handler removed: {before.label()}", None, before.line
        elif before is not None and after is not None:
            if before.types != after.types:
                verb = "broadened" if after.broad and not before.broad else "narrowed" if before.broad and not after.broad else "changed"
                yield f"handler {verb}: {before.label()} → {after.label()}", after.line, before.line
            if before.raises and not after.raises:
                yield f"`raise` removed from {after.label()}", after.line, before.line
            elif after.raises and not before.raises:
                yield f"`raise` added to {after.label()}", after.line, before.line


def _regressions(qualname: str, old: FunctionFacts, now: FunctionFacts, base: str) -> Iterator[Risk]:
    if old.shape == now.shape:
        return
    lines = base.splitlines()

    def snippet(line: int | None) -> str:
        return lines[line].strip() if line is not None and 0 <= line < len(lines) else ""

    for before, after in _paired_handlers(old, now):
        if before is None or after is None:
            continue
        if before.raises and not after.raises:
            yield Risk("GAP191", f"{after.label()} raised in the base version and no longer does: the failure is now "
                       "handled here and the caller goes on", Severity.WARNING, qualname, after.line, before.line,
                       ("whether the callers now check for the failure some other way",
                        "whether the removed `raise` was reported elsewhere (middleware, a wrapper)"),
                       base_snippet=snippet(before.line))
        if after.broad and not before.broad:
            yield Risk("GAP192", f"handler broadened from {before.label()} to {after.label()}: errors it was never "
                       "written for are caught here now", Severity.WARNING, qualname, after.line, before.line,
                       ("which new exceptions the `try` body can raise, and whether this handler is right for them",),
                       base_snippet=snippet(before.line))
    if now.mutates:
        for guard, line in old.guards:
            if guard not in {g for g, _ in now.guards}:
                yield Risk("GAP291", f"{guard} guarded this function in the base version and is gone, while the "
                           "function still changes state", Severity.WARNING, qualname, now.line, line,
                           ("whether this code still runs concurrently", "whether a caller now takes the lock instead"),
                           base_snippet=snippet(line))
    old_keys = {e.callee: e for e in old.effects}
    for effect in now.effects:
        previous = old_keys.get(effect.callee)
        if previous is not None and previous.keyed and not effect.keyed:
            yield Risk("GAP391", f"the idempotency key was removed from {effect.label}", Severity.WARNING, qualname,
                       effect.line, previous.line,
                       ("whether the service deduplicates this request without the key",),
                       base_snippet=snippet(previous.line))
    if now.retries and not old.retries:
        unkeyed = [e for e in now.effects if not e.keyed]
        if unkeyed:
            yield Risk("GAP391", f"a retry ({now.retries[0]}) was added around {unkeyed[0].label}, which has no "
                       "idempotency key", Severity.WARNING, qualname, unkeyed[0].line, None,
                       ("whether the remote service deduplicates a repeated request",))


def change_notes(reviews: Sequence[FileReview], tests_changed: bool) -> list[str]:
    """What the change as a whole cannot show."""
    notes = []
    handler_changes = [c for r in reviews for c in r.changes if c.what.startswith(("handler added", "handler broadened",
                                                                                     "`raise` removed"))]
    if handler_changes and not tests_changed:
        notes.append("no test file changes in this change: nothing here exercises the failure path of the "
                     f"{len(handler_changes)} handler change(s)")
    if any(c.what.startswith(("retry added", "side effect added inside retried code")) for r in reviews for c in r.changes):
        notes.append("a retry now wraps calls into other services: whether those services deduplicate a repeated "
                     "request is not visible here")
    if any(c.what.startswith("guard removed") for r in reviews for c in r.changes):
        notes.append("whether the code that lost a guard still runs concurrently (worker model, deployment) is not "
                     "visible here")
    return notes


# -- the editor: the buffer against the file at git HEAD -------------------------------------------


def unit_function_facts(class_path: tuple[str, ...], parse_text: str, summary: ModuleSummary,
                        catalogue: Catalogue = DEFAULT_CATALOGUE) -> list[FunctionFacts]:
    """Facts of the functions of one unit (lines of ``parse_text``), names qualified through the
    whole module's summary."""
    try:
        tree = ast.parse(parse_text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # mid-typing: no facts until it parses again
    statements = tree.body
    if class_path and statements and isinstance(statements[0], ast.ClassDef):
        statements = statements[0].body
    prefix = ".".join(class_path)
    finder = ScopeFinder(summary, catalogue)
    return [facts_of(function, qualname, class_name, summary, catalogue, finder)
            for function, qualname, class_name in functions_of(statements, prefix, prefix or None)]


def regressions(base_text: str, base: dict[str, FunctionFacts], now: dict[str, FunctionFacts],
                settings: Settings | None = None) -> list[Risk]:
    """The diff-only regressions (GAP191, GAP192, GAP291, GAP391) of the functions in both."""
    settings = settings or Settings()
    found = []
    for qualname, facts in now.items():
        old = base.get(qualname)
        if old is not None:
            found.extend(r for r in _regressions(qualname, old, facts, base_text) if _enabled(r.code, settings))
    return sorted(found, key=lambda r: (r.line, r.code))


def as_finding(risk: Risk, lines: Sequence[str] = (), base_name: str = "HEAD") -> Finding:
    """A risk as a finding (for the editor and SARIF): the flagged line, the base version's line
    in what was checked."""
    from gap_ls.core import registry
    from gap_ls.core.model import Position, Span

    if risk.finding is not None:
        return risk.finding
    rule = registry.rule_by_code(risk.code)
    assert rule is not None, "regression codes are in the catalogue"
    text = lines[risk.line] if 0 <= risk.line < len(lines) else ""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip("\r\n"))
    checked = (f"at {base_name}, line {risk.base_line + 1}: `{risk.base_snippet}`",) if risk.base_line is not None else ()
    return Finding(risk.code, rule.name, rule.family, risk.severity, risk.message,
                   Span(Position(risk.line, start), Position(risk.line, max(end, start))),
                   checked=checked, unverifiable=risk.unverifiable)
