"""Fix "Keep the task and surface its exception" (GAP104).

- a discarded task or future: keep it in a variable, hold a strong reference
  (tasks) and add a done-callback that logs `exception()`;
- a task kept but never observed: add that done-callback;
- a thread: wrap its target so an exception is logged with its traceback;
- `executor.map(...)` never iterated: consume it with `list(...)`;
- `gather(..., return_exceptions=True)` never checked: keep the results and
  log every exception among them.
The helpers are added once at module level; every decision left open is
marked `TODO(gap-ls)`.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import Span
from gap_ls.core.nodes import keyword, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo, with_trailing_todo

CALLBACK = "_log_background_failure"
CALLBACK_SOURCE = f'''
_background_tasks: set = set()  # strong references: asyncio keeps only weak ones to running tasks


def {CALLBACK}(work) -> None:
    """Done-callback added by gap-ls: surface the exception of a background task or future."""
    _background_tasks.discard(work)
    if work.cancelled():
        return
    error = work.exception()
    if error is not None:
        # TODO(gap-ls): decide who must hear about this failure (an alert, a retry, a status the user sees)
        logging.getLogger(__name__).error("background work failed", exc_info=error)
'''
WRAPPER = "_report_thread_failure"
WRAPPER_SOURCE = f'''
def {WRAPPER}(target):
    """Wrapper added by gap-ls: log a thread target's exception with its traceback instead of losing it."""

    def run(*args, **kwargs):
        try:
            return target(*args, **kwargs)
        except BaseException:
            # TODO(gap-ls): decide who must hear about this failure (an alert, restarting the worker)
            logging.getLogger(__name__).exception("thread target %r failed", target)
            raise

    return run
'''


def observe(tree: UnitTree, additions: ModuleAdditions, target: Span, kind: str) -> cst.Module:
    call = tree.find(target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if kind == "thread":
        return _wrap_thread_target(tree, additions, call)
    line = _statement_of(tree, call)
    if kind == "executor-map":
        if isinstance(call.func, cst.Name) and call.func.value == "list":
            return tree.module  # already consumed: list(executor.map(...))
        wrapped = cst.Call(func=cst.Name("list"), args=[cst.Arg(value=call)])
        new_line = with_trailing_todo(
            line.deep_replace(call, wrapped), "iterating the results re-raises the first failure"
        )
        return tree.module.deep_replace(line, new_line)
    if kind == "gather":
        return _check_gathered(tree, additions, line, call)
    return _keep_and_watch(tree, additions, line, call, kind)


def _statement_of(tree: UnitTree, call: cst.Call) -> cst.SimpleStatementLine:
    for node in tree.positions:
        if isinstance(node, cst.SimpleStatementLine) and any(inner is call for inner in walk(node)):
            return node
    raise FixNotApplicable("the call is not part of a simple statement")


def _free_name(tree: UnitTree, line: cst.CSTNode, wanted: str) -> str:
    used = {n.value for n in walk(tree.module, enter_definitions=True) if isinstance(n, cst.Name)}
    name, counter = wanted, 1
    while name in used:
        counter += 1
        name = f"{wanted}_{counter}"
    return name


def _keep_and_watch(
    tree: UnitTree, additions: ModuleAdditions, line: cst.SimpleStatementLine, call: cst.Call, kind: str
) -> cst.Module:
    additions.need_import("logging")
    additions.need_helper(CALLBACK, CALLBACK_SOURCE)
    [statement] = line.body if len(line.body) == 1 else (None,)
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1:
        kept = cst.Module(body=[]).code_for_node(statement.targets[0].target)
        if _already_watched(tree, kept):
            return tree.module
        extra = [cst.parse_statement(f"{kept}.add_done_callback({CALLBACK})")]
        return _replace_line(tree, line, [line, *extra])
    if not isinstance(statement, cst.Expr):
        raise FixNotApplicable("the task is used in an expression this fix does not rewrite")
    name = _free_name(tree, line, "task" if kind == "task" else "future")
    keep = line.with_changes(body=[cst.Assign(targets=[cst.AssignTarget(target=cst.Name(name))], value=statement.value)])
    extra = []
    if kind == "task":
        extra.append(cst.parse_statement(f"_background_tasks.add({name})"))
    extra.append(cst.parse_statement(f"{name}.add_done_callback({CALLBACK})"))
    return _replace_line(tree, line, [keep, *extra])


def _already_watched(tree: UnitTree, kept: str) -> bool:
    for node in tree.positions:
        if isinstance(node, cst.Call) and cst.Module(body=[]).code_for_node(node) == f"{kept}.add_done_callback({CALLBACK})":
            return True
    return False


def _replace_line(tree: UnitTree, line: cst.SimpleStatementLine, lines: list[cst.BaseStatement]) -> cst.Module:
    class Replace(cst.CSTTransformer):
        def leave_SimpleStatementLine(self, original, updated):
            return cst.FlattenSentinel(lines) if original is line else updated

    result = tree.module.visit(Replace())
    assert isinstance(result, cst.Module)
    return result


def _wrap_thread_target(tree: UnitTree, additions: ModuleAdditions, call: cst.Call) -> cst.Module:
    argument = keyword(call, "target") or keyword(call, "function")
    if argument is None and len(call.args) > 1:
        argument = call.args[1]  # threading.Timer(interval, function)
    if argument is None:
        raise FixNotApplicable("the thread has no target to wrap")
    if isinstance(argument.value, cst.Call) and cst.Module(body=[]).code_for_node(argument.value.func) == WRAPPER:
        return tree.module
    additions.need_import("logging")
    additions.need_helper(WRAPPER, WRAPPER_SOURCE)
    wrapped = argument.with_changes(value=cst.Call(func=cst.Name(WRAPPER), args=[cst.Arg(value=argument.value)]))
    return tree.module.deep_replace(argument, wrapped)


def _check_gathered(
    tree: UnitTree, additions: ModuleAdditions, line: cst.SimpleStatementLine, call: cst.Call
) -> cst.Module:
    [statement] = line.body if len(line.body) == 1 else (None,)
    if isinstance(statement, cst.Assign):
        return tree.module  # the results are kept already; checking them is the code's business
    if not isinstance(statement, cst.Expr):
        raise FixNotApplicable("only a discarded gather(...) result is rewritten")
    additions.need_import("logging")
    results = _free_name(tree, line, "results")
    result = _free_name(tree, line, "result")
    keep = line.with_changes(
        body=[cst.Assign(targets=[cst.AssignTarget(target=cst.Name(results))], value=statement.value)]
    )
    check = cst.parse_statement(
        f"for {result} in {results}:\n"
        f"    if isinstance({result}, BaseException):\n"
        f'        logging.getLogger(__name__).error("gathered work failed", exc_info={result})\n'
    )
    comment = cst.EmptyLine(comment=todo("decide who must hear about these failures (an alert, a retry)"))
    check = check.with_changes(leading_lines=[comment])
    return _replace_line(tree, line, [keep, check])
