"""Fixes "Use an atomic file primitive" for file check-then-act (GAP203).

Creating a directory that another worker may create first: `exist_ok=True`
(`os.makedirs`, `Path.mkdir`). Removing a file another worker may remove first:
`Path.unlink(missing_ok=True)`, or `os.remove(...)` inside
`contextlib.suppress(FileNotFoundError)`. The existence check stays in place (now only a
shortcut) with a TODO saying so.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import FixHint
from gap_ls.core.nodes import keyword, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, module_alias, todo, with_trailing_todo


def set_flag(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    """`exist_ok=True` / `missing_ok=True` on the call at the target."""
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    name = str(hint.data.get("keyword"))
    if keyword(call, name) is not None:
        return tree.module
    flag = cst.Arg(keyword=cst.Name(name), value=cst.Name("True"),
                   equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
    args = list(call.args)
    if args:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    new_call = call.with_changes(args=[*args, flag])
    module = tree.module.deep_replace(call, new_call)
    line = _line_holding(module, new_call)
    return module.deep_replace(line, with_trailing_todo(line, "another worker may do this first; the check above is now only a shortcut"))


def ignore_missing(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    """`os.remove(p)` -> `with contextlib.suppress(FileNotFoundError): os.remove(p)`."""
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if "keyword" in hint.data:
        return set_flag(tree, additions, hint)
    line = _line_holding(tree.module, call)
    if _inside_suppress(tree.module, line):
        return tree.module
    alias = module_alias(tree.summary, "contextlib")
    if alias is None:
        additions.need_import("contextlib")
        alias = "contextlib"
    header = cst.TrailingWhitespace(
        whitespace=cst.SimpleWhitespace("  "),
        comment=todo("another worker may remove it first; the check above is now only a shortcut"),
    )
    statement = cst.With(
        items=[cst.WithItem(item=cst.parse_expression(f"{alias}.suppress(FileNotFoundError)"))],
        body=cst.IndentedBlock(body=[line.with_changes(leading_lines=[])], header=header),
        leading_lines=line.leading_lines,
    )
    return tree.module.deep_replace(line, statement)


def _inside_suppress(module: cst.Module, line: cst.CSTNode) -> bool:
    for node in walk(module, enter_definitions=True):
        if isinstance(node, cst.With) and any(inner is line for inner in walk(node.body)):
            if any("suppress" in cst.Module(body=[]).code_for_node(i.item) for i in node.items):
                return True
    return False


def _line_holding(module: cst.Module, node: cst.CSTNode) -> cst.SimpleStatementLine:
    for candidate in walk(module, enter_definitions=True):
        if isinstance(candidate, cst.SimpleStatementLine) and any(inner is node for inner in walk(candidate)):
            return candidate
    raise FixNotApplicable("the call is not part of a simple statement")
