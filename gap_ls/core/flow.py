"""How control leaves a block of statements: fall through, return, raise, continue, break.

A small structural analysis over libcst statements, good enough to answer
"does every path through this handler raise?" and "can this loop end
normally?". Calls that never return (``sys.exit``, ``abort``, functions
annotated ``NoReturn``) are counted as raising through a caller-supplied
predicate, so the analysis itself knows nothing about libraries.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import libcst as cst

from gap_ls.core.nodes import body_statements, is_true


class Exit(enum.Flag):
    NONE = 0
    FALLTHROUGH = enum.auto()
    RETURN = enum.auto()
    RAISE = enum.auto()
    CONTINUE = enum.auto()
    BREAK = enum.auto()


NoReturnPredicate = Callable[[cst.Call], bool]


def _never(_: cst.Call) -> bool:
    return False


def block_exits(statements: Iterable[cst.CSTNode], no_return: NoReturnPredicate = _never) -> Exit:
    """The ways control can leave ``statements`` run in order."""
    collected = Exit.NONE
    for statement in statements:
        exits = statement_exits(statement, no_return)
        collected |= exits & ~Exit.FALLTHROUGH
        if not exits & Exit.FALLTHROUGH:
            return collected
    return collected | Exit.FALLTHROUGH


def statement_exits(statement: cst.CSTNode, no_return: NoReturnPredicate = _never) -> Exit:
    if isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return block_exits(statement.body, no_return)
    handler = _HANDLERS.get(type(statement))
    if handler is not None:
        return handler(statement, no_return)
    return Exit.FALLTHROUGH


def _small(exit_kind: Exit) -> Callable[[cst.CSTNode, NoReturnPredicate], Exit]:
    return lambda _statement, _no_return: exit_kind


def _expr(statement: cst.Expr, no_return: NoReturnPredicate) -> Exit:
    value = statement.value
    if isinstance(value, cst.Await):
        value = value.expression
    if isinstance(value, cst.Call) and no_return(value):
        return Exit.RAISE
    return Exit.FALLTHROUGH


def _if(statement: cst.If, no_return: NoReturnPredicate) -> Exit:
    body = block_exits(body_statements(statement), no_return)
    if is_true(statement.test):
        return body
    orelse = statement.orelse
    if orelse is None:
        return body | Exit.FALLTHROUGH
    if isinstance(orelse, cst.If):
        return body | _if(orelse, no_return)
    return body | block_exits(body_statements(orelse), no_return)


def loop_exits(statement: cst.For | cst.While, no_return: NoReturnPredicate = _never) -> Exit:
    """Exits of a loop seen from outside: break and exhaustion fall through."""
    body = block_exits(body_statements(statement), no_return)
    escapes = body & (Exit.RETURN | Exit.RAISE)
    infinite = isinstance(statement, cst.While) and is_true(statement.test)
    if infinite:
        return escapes | (Exit.FALLTHROUGH if body & Exit.BREAK else Exit.NONE)
    exhausted = Exit.FALLTHROUGH
    if statement.orelse is not None:
        exhausted = block_exits(body_statements(statement.orelse), no_return)
    return escapes | exhausted | (Exit.FALLTHROUGH if body & Exit.BREAK else Exit.NONE)


def _try(statement: cst.Try | cst.TryStar, no_return: NoReturnPredicate) -> Exit:
    body = block_exits(body_statements(statement), no_return)
    if statement.orelse is not None and body & Exit.FALLTHROUGH:
        body = (body & ~Exit.FALLTHROUGH) | block_exits(body_statements(statement.orelse), no_return)
    handled = body
    for handler in statement.handlers:
        handled |= block_exits(body_statements(handler), no_return)
    if statement.finalbody is not None:
        final = block_exits(body_statements(statement.finalbody), no_return)
        if not final & Exit.FALLTHROUGH:
            return final
        return handled | (final & ~Exit.FALLTHROUGH)
    return handled


def _with(statement: cst.With, no_return: NoReturnPredicate) -> Exit:
    # Treated as transparent: a context manager that swallows exceptions
    # (contextlib.suppress) inside a handler is rare enough not to model.
    return block_exits(body_statements(statement), no_return)


def _match(statement: cst.Match, no_return: NoReturnPredicate) -> Exit:
    exits = Exit.NONE
    irrefutable = False
    for case in statement.cases:
        exits |= block_exits(body_statements(case), no_return)
        pattern = case.pattern
        if case.guard is None and isinstance(pattern, cst.MatchAs) and pattern.pattern is None:
            irrefutable = True
    return exits if irrefutable else exits | Exit.FALLTHROUGH


_HANDLERS: dict[type, Callable[[cst.CSTNode, NoReturnPredicate], Exit]] = {
    cst.Return: _small(Exit.RETURN),
    cst.Raise: _small(Exit.RAISE),
    cst.Continue: _small(Exit.CONTINUE),
    cst.Break: _small(Exit.BREAK),
    cst.Expr: _expr,
    cst.If: _if,
    cst.For: loop_exits,
    cst.While: loop_exits,
    cst.Try: _try,
    cst.TryStar: _try,
    cst.With: _with,
    cst.Match: _match,
}
