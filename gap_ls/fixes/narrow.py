"""Fix "Narrow the exception" (GAP101, GAP102, GAP103).

Offered only when the `try` body (or the `with suppress(...)` body) shows
which errors it expects — the types were worked out during analysis and
arrive in the fix data — and only as a choice: the handler's type, or the
broad argument of `suppress(...)`, is replaced by those types, with a TODO
that says other errors now propagate.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import Span
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo

BROAD = frozenset({"builtins.Exception", "builtins.BaseException"})


def narrow(tree: UnitTree, additions: ModuleAdditions, span: Span, types: list[str]) -> cst.Module:
    if not types:
        raise FixNotApplicable("the try body does not show which exceptions it expects")
    new_type = _expression(types)
    target = tree.find(span, (cst.ExceptHandler, cst.ExceptStarHandler, cst.With))
    if isinstance(target, cst.With):
        calls = [item.item for item in target.items if isinstance(item.item, cst.Call)]
        if not calls:
            raise FixNotApplicable("the with statement has no suppress(...) call")
        return _narrow_suppress(tree, calls[0], types)
    assert isinstance(target, (cst.ExceptHandler, cst.ExceptStarHandler))
    if target.type is not None and _same(target.type, new_type):
        return tree.module
    body = target.body
    if isinstance(body, cst.SimpleStatementSuite):
        body = cst.IndentedBlock(body=[cst.SimpleStatementLine(body=list(body.body))])
    first, *rest = body.body
    was = cst.Module(body=[]).code_for_node(target.type) if target.type is not None else "everything (bare except)"
    note = cst.EmptyLine(comment=todo(f"narrowed from `{was}` to {', '.join(types)}; any other error now propagates"))
    first = first.with_changes(leading_lines=[*first.leading_lines, note])
    narrowed = target.with_changes(type=new_type, body=body.with_changes(body=[first, *rest]))
    if isinstance(narrowed, cst.ExceptHandler) and target.type is None:
        narrowed = narrowed.with_changes(whitespace_after_except=cst.SimpleWhitespace(" "))
    return tree.module.deep_replace(target, narrowed)


def _narrow_suppress(tree: UnitTree, call: cst.Call, types: list[str]) -> cst.Module:
    arguments: list[cst.Arg] = []
    changed = False
    for arg in call.args:
        if tree.qualify(cst.Module(body=[]).code_for_node(arg.value)) in BROAD:
            *first, last = [cst.Arg(value=_expression([t])) for t in types]
            arguments += [*first, last.with_changes(comma=arg.comma)]  # libcst adds the commas between
            changed = True
        else:
            arguments.append(arg)
    if not changed:
        return tree.module
    return tree.module.deep_replace(call, call.with_changes(args=arguments))


def _expression(types: list[str]) -> cst.BaseExpression:
    if len(types) == 1:
        return cst.parse_expression(types[0])
    return cst.parse_expression("(" + ", ".join(types) + ")")


def _same(current: cst.BaseExpression, new: cst.BaseExpression) -> bool:
    return cst.Module(body=[]).code_for_node(current) == cst.Module(body=[]).code_for_node(new)
