"""Fix "Re-raise after handling" (GAP101, GAP102, GAP103, GAP106, GAP107).

Keeps everything the handler does and makes the failure propagate: a
`return <default>`, `pass`, `...`, `continue` or `break` in the handler
becomes `raise` (with a TODO naming what it replaced), `raise` is appended
when the handler can still fall off its end, and a log call below ERROR
becomes `.exception(...)` so the traceback is kept. For a broad handler in
async code that swallows cancellation, an `except asyncio.CancelledError:
raise` clause is inserted before it instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import libcst as cst

from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.model import Span
from gap_ls.core.nodes import body_statements, dotted_name
from gap_ls.fixes.edits import ModuleAdditions, UnitTree, module_alias, todo, with_trailing_todo
from gap_ls.rules.errors.handlers import default_value

Handler = cst.ExceptHandler | cst.ExceptStarHandler

_LOGGER = re.compile(r"^_*(log|logger|logging|LOG|LOGGER|Log|Logger)$|(_log|_logger|Logger|LOGGER|logger)$")
_QUIET_LEVELS = frozenset({"debug", "info", "warning", "warn"})
_CANCELLED = frozenset({"asyncio.CancelledError", "asyncio.exceptions.CancelledError"})


def reraise(tree: UnitTree, additions: ModuleAdditions, target: Span, cancellation: bool) -> cst.Module:
    handler = tree.find(target, (cst.ExceptHandler, cst.ExceptStarHandler))
    if cancellation and not _catches_cancelled_explicitly(handler, tree):
        return _insert_cancellation_clause(tree, additions, handler)
    if _always_raises(handler):
        return tree.module
    return tree.module.deep_replace(handler, _reraising(handler, tree.qualify, relevel=not cancellation))


def _always_raises(handler: Handler) -> bool:
    exits = block_exits(body_statements(handler))
    return bool(exits) and not exits & ~Exit.RAISE


def _catches_cancelled_explicitly(handler: Handler, tree: UnitTree) -> bool:
    if handler.type is None:
        return False
    elements = handler.type.elements if isinstance(handler.type, cst.Tuple) else None
    expressions = [e.value for e in elements] if elements is not None else [handler.type]
    return any(tree.qualify(dotted_name(e) or "") in _CANCELLED for e in expressions)


def _raise_line(message: str) -> cst.SimpleStatementLine:
    return with_trailing_todo(cst.SimpleStatementLine(body=[cst.Raise()]), message)


class _Reraiser(cst.CSTTransformer):
    """Replaces the swallowing exits of one handler body (not entering nested definitions)."""

    def __init__(self, qualify: Callable[[str], str], relevel: bool) -> None:
        super().__init__()
        self.qualify = qualify
        self.relevel = relevel
        self.depth = 0
        self.relevelled: list[str] = []  # log levels raised to `exception`

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_For(self, node: cst.For) -> bool:
        self.depth += 1
        return True

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        self.depth -= 1
        return updated

    def visit_While(self, node: cst.While) -> bool:
        self.depth += 1
        return True

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        self.depth -= 1
        return updated

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.BaseStatement:
        replaced: list[str] = []
        body = []
        for statement in updated.body:
            exit_code = _replaced_exit(statement, self.depth > 0, self.qualify)
            if exit_code is None:
                body.append(statement)
            else:
                replaced.append(exit_code)
                body.append(cst.Raise(semicolon=statement.semicolon))
        if not replaced:
            return updated
        note = todo(f"was `{'; '.join(replaced)}`; re-raised so the caller sees the failure")
        if updated.trailing_whitespace.comment is None:
            whitespace = cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=note)
            return updated.with_changes(body=body, trailing_whitespace=whitespace)
        # Keep the user's own comment; the note goes on the line above.
        return updated.with_changes(body=body, leading_lines=[*updated.leading_lines, cst.EmptyLine(comment=note)])

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        func = updated.func
        if (
            self.relevel
            and isinstance(func, cst.Attribute)
            and func.attr.value in _QUIET_LEVELS
            and _LOGGER.search((dotted_name(func.value) or "").rsplit(".", 1)[-1])
        ):
            self.relevelled.append(func.attr.value)
            return updated.with_changes(func=func.with_changes(attr=cst.Name("exception")))
        return updated


def _replaced_exit(statement: cst.BaseSmallStatement, in_inner_loop: bool, qualify: Callable[[str], str]) -> str | None:
    """The source of a swallowing exit that should become `raise`, else None."""
    code = cst.Module(body=[]).code_for_node(statement)
    if isinstance(statement, cst.Pass) or (isinstance(statement, cst.Expr) and isinstance(statement.value, cst.Ellipsis)):
        return code
    if isinstance(statement, (cst.Continue, cst.Break)) and not in_inner_loop:
        return code
    if isinstance(statement, cst.Return) and default_value(statement.value, qualify) is not None:
        return code
    return None


def _reraising(handler: Handler, qualify: Callable[[str], str], relevel: bool) -> Handler:
    """``relevel``: log with `exception` where it logged lower (not for cancellation,
    which is normal operation and must not be logged as an error)."""
    if isinstance(handler.body, cst.SimpleStatementSuite):  # `except X: pass` on one line
        suite = handler.body
        line = cst.SimpleStatementLine(body=list(suite.body), trailing_whitespace=suite.trailing_whitespace)
        handler = handler.with_changes(body=cst.IndentedBlock(body=[line]))
    reraiser = _Reraiser(qualify, relevel)
    updated = handler.visit(reraiser)
    assert isinstance(updated, (cst.ExceptHandler, cst.ExceptStarHandler))
    body = updated.body
    statements = list(body.body)
    if block_exits(statements) & ~Exit.RAISE:
        statements.append(_raise_line("re-raised so the caller sees the failure; narrow or wrap it if needed"))
    if reraiser.relevelled:
        levels = ", ".join(f"`{level}`" for level in dict.fromkeys(reraiser.relevelled))
        note = cst.EmptyLine(comment=todo(f"logged with `exception` (was {levels}) to keep the traceback"))
        first = statements[0]
        statements[0] = first.with_changes(leading_lines=[*first.leading_lines, note])
    return updated.with_changes(body=body.with_changes(body=statements))


def _insert_cancellation_clause(tree: UnitTree, additions: ModuleAdditions, handler: Handler) -> cst.Module:
    try_node = next(
        node for node in tree.positions if isinstance(node, (cst.Try, cst.TryStar)) and handler in node.handlers
    )
    alias = module_alias(tree.summary, "asyncio")
    if alias is None:
        additions.need_import("asyncio")
        alias = "asyncio"
    clause = cst.ExceptHandler(
        type=cst.Attribute(value=cst.Name(alias), attr=cst.Name("CancelledError")),
        body=cst.IndentedBlock(
            body=[_raise_line("cancellation must propagate; release resources here first if needed")]
        ),
    )
    handlers = list(try_node.handlers)
    position = handlers.index(handler)
    if any(_catches_cancelled_explicitly(earlier, tree) for earlier in handlers[:position]):
        return tree.module  # cancellation is already re-raised before this handler
    handlers.insert(position, clause)
    return tree.module.deep_replace(try_node, try_node.with_changes(handlers=handlers))
