"""Fix "Re-raise after the last attempt" (GAP105).

For a `for` or conditional `while` retry loop: remember the last exception in
the handler (`last_error = exc`) and add an `else:` clause — it runs only
when the loop was not left by `break` or `return`, that is when every
attempt failed — that raises. For `while True` loops that `break` out of the
handler when the attempts run out, that `break` becomes `raise`.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.model import Span
from gap_ls.core.nodes import body_statements, is_true, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo, with_trailing_todo

LAST_ERROR = "last_error"


def raise_after_retries(tree: UnitTree, additions: ModuleAdditions, target: Span) -> cst.Module:
    loop = tree.find(target, (cst.For, cst.While))
    assert isinstance(loop, (cst.For, cst.While))
    handlers = [
        handler
        for node in body_statements(loop)
        if isinstance(node, (cst.Try, cst.TryStar))
        for handler in node.handlers
    ]
    if not handlers:
        raise FixNotApplicable("the loop has no try/except directly in its body")
    if isinstance(loop, cst.While) and is_true(loop.test):
        return _raise_instead_of_break(tree, loop, handlers)
    if loop.orelse is not None and not block_exits(body_statements(loop.orelse)) & Exit.FALLTHROUGH:
        return tree.module  # already raises when the attempts run out
    return _raise_in_else(tree, loop, handlers)


def _raise_in_else(tree: UnitTree, loop: cst.For | cst.While, handlers: list[cst.CSTNode]) -> cst.Module:
    new_loop = loop
    for handler in handlers:
        remembered = _remember_error(handler)
        new_loop = new_loop.deep_replace(handler, remembered)
    final = with_trailing_todo(
        cst.parse_statement(f'raise RuntimeError("all attempts failed") from {LAST_ERROR}'),
        "raise the error type callers expect",
    )
    if loop.orelse is not None:
        orelse = new_loop.orelse
        new_loop = new_loop.with_changes(orelse=orelse.with_changes(body=orelse.body.with_changes(body=[*orelse.body.body, final])))
    else:
        new_loop = new_loop.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=[final])))
    initial = cst.parse_statement(f"{LAST_ERROR}: BaseException | None = None")
    new_loop = new_loop.with_changes(leading_lines=[])
    initial = initial.with_changes(leading_lines=loop.leading_lines)

    class Replace(cst.CSTTransformer):
        def leave_For(self, original, updated):
            return cst.FlattenSentinel([initial, new_loop]) if original is loop else updated

        def leave_While(self, original, updated):
            return cst.FlattenSentinel([initial, new_loop]) if original is loop else updated

    result = tree.module.visit(Replace())
    assert isinstance(result, cst.Module)
    return result


def _remember_error(handler: cst.ExceptHandler | cst.ExceptStarHandler) -> cst.CSTNode:
    name = handler.name.name.value if handler.name is not None and isinstance(handler.name.name, cst.Name) else None
    if name is None:
        name = "exc"
        handler = handler.with_changes(
            type=handler.type if handler.type is not None else cst.Name("BaseException"),
            whitespace_after_except=cst.SimpleWhitespace(" "),
            name=cst.AsName(name=cst.Name(name)),
        )
    body = handler.body
    if isinstance(body, cst.SimpleStatementSuite):
        body = cst.IndentedBlock(body=[cst.SimpleStatementLine(body=list(body.body))])
    remember = cst.parse_statement(f"{LAST_ERROR} = {name}")
    return handler.with_changes(body=body.with_changes(body=[remember, *body.body]))


def _raise_instead_of_break(tree: UnitTree, loop: cst.While, handlers: list[cst.CSTNode]) -> cst.Module:
    breaks = [node for handler in handlers for node in walk(handler) if isinstance(node, cst.SimpleStatementLine)
              and len(node.body) == 1 and isinstance(node.body[0], cst.Break)]
    if not breaks:
        return tree.module
    module = tree.module
    for line in breaks:
        replacement = line.with_changes(
            body=[cst.Raise()],
            trailing_whitespace=cst.TrailingWhitespace(
                whitespace=cst.SimpleWhitespace("  "), comment=todo("attempts exhausted: was `break`; re-raise the last error")
            ),
        )
        module = module.deep_replace(line, replacement)
    return module
