"""What the idempotency rules share: one reading of a unit's repeated scopes, and the verdicts.

The reading (``gap_ls.core.idempotency``) works on the unit's text with ``ast``; the rules
report on the libcst nodes found at the same positions. Every rule of the family reads the
same verdicts, computed once per unit: each scope gets at most one finding, so a function
never draws two codes for one gap.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import ClassVar

import libcst as cst

from gap_ls.core.idempotency import (
    RETRY_DECORATORS,
    Catalogue,
    FunctionEffects,
    Scope,
    ScopeFinder,
    Step,
    functions_of,
    unsafe_retry_policy,
)
from gap_ls.core.model import Family, Position
from gap_ls.core.rule import FixRequest, Rule, UnitContext
from gap_ls.core.source import MEMBER_HEADER
from gap_ls.core.summary import ModuleSummary, UnitFacts

# Words one of which a unit must hold to have a repeated scope (checked before parsing).
SCOPE_TRIGGERS = (
    "retry", "Retry", "backoff", "attempt", "tries", "stamina", "task", "actor", "webhook", "Webhook", "consumer",
    "Consumer", "receive_message", "poll(", "consume", "Records", "properties", "ack(", "messages", "stream",
    "construct_event", "signature", "range(", "while ", "Retrying", "retry_context",
)
# The words that by themselves make a unit worth reading; the others only with the ast facts'
# support (a retrying decorator, a task, a retry-shaped handler, a message-callback signature).
_STRONG = ("Retrying", "retry_context", "webhook", "Webhook", "receive_message", "consumer", "Consumer", "Records",
           "construct_event", "poll(", "consume", "ack(")
_DECORATOR_WORDS = ("retry", "backoff", "stamina", "task", "actor", "on_exception", "on_predicate", "idempotent")
KEY_NOTES = (
    "whether the remote service honours the key, and how long it remembers it",
    "whether one key stands for one logical operation (not shared by two different ones)",
)


@dataclass(frozen=True)
class Verdict:
    code: str
    scope: Scope
    at: tuple[int, int]  # (1-based line, column) in the unit's parse text
    step: Step | None = None
    later: Step | None = None  # GAP305: the later call whose failure repeats the effect
    detail: str = ""


class IdempotencyRule(Rule):
    family: ClassVar[Family] = Family.IDEMPOTENCY
    triggers = SCOPE_TRIGGERS

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None:
            return True
        if not facts.functions:
            return False
        if any(word in _STRONG for word in found):
            return True
        for function in facts.functions:
            named = [summary.qualify(d) for d in function.decorators]
            if any(word in decorator for decorator in named for word in _DECORATOR_WORDS):
                return True
            if "body" in function.params and ({"properties", "props", "message"} & set(function.params)):
                return True  # a pika/kombu message callback
        return any(h.in_loop and h.try_exits for h in facts.handlers)

    def __init__(self, context: UnitContext) -> None:
        super().__init__(context)
        self.nodes: list[cst.CSTNode] = []

    # The nodes a verdict can point at (batched visitors are called by node type).
    def visit_Call(self, node: cst.Call) -> None:
        self.nodes.append(node)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self.nodes.append(node)

    def visit_For(self, node: cst.For) -> None:
        self.nodes.append(node)

    def visit_While(self, node: cst.While) -> None:
        self.nodes.append(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.nodes.append(node)

    def finish(self) -> None:
        verdicts = [v for v in unit_verdicts(self.context) if v.code == self.code]
        if not verdicts:
            return
        index = NodeIndex(self.context, self.nodes)
        for verdict in verdicts:
            fresh_key = verdict.code == "GAP302"  # the innermost call there: `uuid4()` in `uuid4().hex`
            end = verdict.step.end if verdict.step is not None and not fresh_key else None
            node = index.get(verdict.at, end, innermost=fresh_key)
            if node is not None:
                self.report_verdict(verdict, node, index)

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        raise NotImplementedError

    # -- pieces of a report ------------------------------------------------------------------
    def scope_node(self, verdict: Verdict, index: NodeIndex) -> cst.CSTNode | None:
        return index.get((verdict.scope.line, verdict.scope.column))

    def related(self, verdict: Verdict, index: NodeIndex) -> list[tuple[cst.CSTNode, str]]:
        found = []
        scope = self.scope_node(verdict, index)
        if scope is not None:
            what = "runs the scope again" if verdict.scope.kind == "retry" else "may deliver the message again"
            found.append((scope, f"{verdict.scope.how} {what}"))
        if verdict.later is not None:
            later = index.get((verdict.later.line, verdict.later.column))
            if later is not None:
                found.append((later, "a failure here repeats the effect above"))
        return found

    def key_fix(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> list[FixRequest]:
        step = verdict.step
        if step is None or step.effect is None or step.effect.via or not step.effect.form:
            return []
        if not isinstance(node, cst.Call):
            return []
        scope = self.scope_node(verdict, index)
        function = _function_at(index, verdict.scope)
        stable = bool(verdict.scope.stable_ids)
        if not stable and not isinstance(scope, (cst.For, cst.While)) and not self.splittable(function):
            return []  # no stable id, no loop to mint the key before, no function to split
        nodes = {k: v for k, v in (("scope", scope), ("function", function)) if v is not None}
        data = {
            "form": step.effect.form,
            "scope": verdict.scope.kind if not isinstance(scope, (cst.For, cst.While)) else "loop",
            "stable": verdict.scope.stable_ids[0] if verdict.scope.stable_ids else "",
            "operation": step.effect.kind,
        }
        return [FixRequest("idempotency-key", "Add an idempotency key, made once outside the retry", node, data, nodes)]


    def splittable(self, function: cst.CSTNode | None) -> bool:
        """A function whose decorators are all retries can be split into a key-minting caller
        and the retried part (see gap_ls.fixes.keys)."""
        if not isinstance(function, cst.FunctionDef) or not function.decorators:
            return False
        for decorator in function.decorators:
            target = decorator.decorator
            qualified = self.context.qualify(target.func if isinstance(target, cst.Call) else target)
            if qualified not in RETRY_DECORATORS:
                return False
        return True


def _function_at(index: NodeIndex, scope: Scope) -> cst.CSTNode | None:
    name = scope.function.rsplit(".", 1)[-1]
    return next((n for n in index.nodes if isinstance(n, cst.FunctionDef) and n.name.value == name), None)


# -- reading the unit once --------------------------------------------------------------------------


def catalogue_of(context: UnitContext) -> Catalogue:
    settings = context.settings
    return Catalogue.extended(settings.retry_decorators, settings.side_effect_calls, settings.key_names)


def unit_verdicts(context: UnitContext) -> list[Verdict]:
    key = ("idempotency-verdicts", 0)
    if key not in context.cache:
        context.cache[key] = list(_verdicts(context))
    return context.cache[key]


def _verdicts(context: UnitContext) -> list[Verdict]:
    text = context.unit.parse_text()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # libcst parsed it; ast may still refuse (deep nesting): nothing to say then
    class_path = context.unit.class_path
    statements = tree.body
    if text.startswith(MEMBER_HEADER) and class_path and statements and isinstance(statements[0], ast.ClassDef):
        statements = statements[0].body
    catalogue = catalogue_of(context)
    finder = ScopeFinder(context.summary, catalogue, context.depend, _jedi_follower(context, catalogue))
    verdicts: list[Verdict] = []
    prefix = ".".join(class_path)
    reported: set[tuple[int, int]] = set()
    for function, qualname, class_name in functions_of(statements, prefix, prefix or None):
        for scope in finder.scopes(function, qualname, class_name):
            verdict = judge(scope)
            # One finding per effect: a retry loop inside a consumer reports it once, as a retry.
            if verdict is not None and verdict.at not in reported:
                reported.add(verdict.at)
                verdicts.append(verdict)
    verdicts.extend(_policies(tree, context, catalogue))
    return [_in_code_points(v, text) for v in verdicts]


def _jedi_follower(context: UnitContext, catalogue: Catalogue):  # type: ignore[no-untyped-def]
    """Follows a call into another module of the workspace with jedi, if the context has a resolver."""
    resolve = getattr(context.resolver, "resolve_effects", None)
    if resolve is None:
        return None

    def follow(call: ast.Call) -> tuple[str, str, FunctionEffects] | None:
        target = call.func
        line = (target.end_lineno or target.lineno) - 1 + context.unit.line_offset() + context.line_offset
        column = (target.end_col_offset or 0) - (len(target.attr) if isinstance(target, ast.Attribute) else
                                                 len(target.id) if isinstance(target, ast.Name) else 0)
        found = resolve(context.source, context.path, Position(line, column), catalogue)
        if found is None:
            return None
        external, effects = found
        return f"{external.module}.{external.info.qualname}", external.describe(), effects

    return follow


def judge(scope: Scope) -> Verdict | None:
    """The one finding a repeated scope gets, if any."""
    if scope.guarded:
        return None
    steps = list(scope.steps)
    first_guard = next((i for i, s in enumerate(steps) if s.guard), len(steps))
    effects = [(i, s) for i, s in enumerate(steps[:first_guard]) if s.effect is not None]
    if scope.kind == "retry":
        fresh = next((s for _, s in effects if s.effect and s.effect.keyed and s.effect.fresh_key), None)
        if fresh is not None and fresh.effect is not None and fresh.effect.fresh_key:
            return Verdict("GAP302", scope, fresh.effect.fresh_key, fresh)
    unkeyed = [(i, s) for i, s in effects if s.effect and (not s.effect.keyed or s.effect.fresh_key)]
    if not unkeyed:
        return None
    if scope.kind == "at-least-once":
        return Verdict("GAP304", scope, (unkeyed[0][1].line, unkeyed[0][1].column), unkeyed[0][1])
    for index, step in unkeyed:
        later = next((t for t in steps[index + 1 :] if t.fails and not _follows_up(t, step)), None)
        if later is not None:
            return Verdict("GAP305", scope, (step.line, step.column), step, later)
    first = unkeyed[0][1]
    return Verdict("GAP301", scope, (first.line, first.column), first)


def _follows_up(later: Step, effect: Step) -> bool:
    """`requests.post(...).json()`, `session.add(row)` then `session.commit()`: part of the effect."""
    if later.line <= effect.line and later.column <= effect.column:
        return True
    assert effect.effect is not None
    return effect.effect.kind == "insert" and later.callee.rpartition(".")[2] in ("commit", "flush")


def _policies(tree: ast.Module, context: UnitContext, catalogue: Catalogue) -> list[Verdict]:
    """GAP303: urllib3 `Retry(...)` policies that re-send POST/PATCH, where the module POSTs without a key."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and "Retry" in (ast.unparse(node.func) if isinstance(node.func, ast.Attribute | ast.Name) else ""):
            verdict = unsafe_retry_policy(node, context.summary)
            if verdict is None:
                continue
            if not context.depend(("unkeyed-http", catalogue)):
                continue
            scope = Scope("policy", "a urllib3 retry policy", node.lineno, node.col_offset, "", ())
            found.append(Verdict("GAP303", scope, (node.lineno, node.col_offset), detail=verdict))
    return found


def _in_code_points(verdict: Verdict, text: str) -> Verdict:
    """ast columns count UTF-8 bytes; libcst's count code points."""
    if text.isascii():
        return verdict
    lines = text.splitlines()

    def convert(line: int, column: int) -> int:
        if 0 < line <= len(lines):
            return len(lines[line - 1].encode("utf-8")[:column].decode("utf-8", errors="ignore"))
        return column

    def step(s: Step | None) -> Step | None:
        if s is None:
            return None
        return replace(s, column=convert(s.line, s.column), end=(s.end[0], convert(*s.end)))

    scope = replace(verdict.scope, column=convert(verdict.scope.line, verdict.scope.column))
    return replace(verdict, scope=scope, at=(verdict.at[0], convert(*verdict.at)), step=step(verdict.step),
                   later=step(verdict.later))


class NodeIndex:
    """The visited nodes by where they start and end (ast's coordinates: 1-based lines)."""

    def __init__(self, context: UnitContext, nodes: list[cst.CSTNode]) -> None:
        positions = context.positions()
        self.nodes = nodes
        self._at: dict[tuple[int, int], list[tuple[cst.CSTNode, tuple[int, int]]]] = {}
        for node in nodes:
            target = node.decorator if isinstance(node, cst.Decorator) else node
            code_range = positions.get(target)
            if code_range is None:
                continue
            start = (code_range.start.line, code_range.start.column)
            self._at.setdefault(start, []).append((target, (code_range.end.line, code_range.end.column)))

    def get(self, start: tuple[int, int], end: tuple[int, int] | None = None, innermost: bool = False
            ) -> cst.CSTNode | None:
        found = self._at.get(start, [])
        if end is not None:
            exact = [node for node, stop in found if stop == end]
            if exact:
                return exact[0]
        if not found:
            return None
        return found[-1][0] if innermost else found[0][0]


def effect_facts(effect) -> tuple[str, ...]:
    """What was checked about an effect, for a finding's `checked` list."""
    facts = [f"{effect.label} is not idempotent"]
    if effect.resolved:
        facts.append(f"it happens in `{effect.via}()`, called from here: resolved with jedi: {effect.resolved}")
    elif effect.via:
        facts.append(f"it happens in `{effect.via}()`, called from the retried code (followed in this module)")
    facts.append("no idempotency key is passed" if not effect.keyed else "its key is made afresh here")
    return tuple(facts)
