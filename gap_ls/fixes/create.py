"""Fixes for exists-then-create (GAP206).

*Use get_or_create* (Django): `Model.objects.create(**fields)` after a `filter(**lookup)`
check becomes `Model.objects.get_or_create(**lookup, defaults={...the other fields})`; the
check stays (now only a shortcut).

*Handle the duplicate*: the create (and, for SQLAlchemy, the commit that inserts) wrapped in
`try:` / `except IntegrityError:` — in Django inside `transaction.atomic()` — re-raising
with a TODO: what a duplicate means here is the author's decision; the unique constraint
that raises it must exist.

*Use incr*: a counter written back from a read becomes `incr` (Django's cache: `add` then
`incr`, since `incr` needs the key). *Set only if absent*: a lock or claim key set after a
separate check becomes `cache.add(...)` / `set(..., nx=True)` whose result decides, with
the check's exit repeated for the case where another worker got there first.
"""

from __future__ import annotations

import libcst as cst

from gap_ls.core.model import FixHint
from gap_ls.core.nodes import body_statements, dotted_name, keyword, method_name, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo, with_trailing_todo
from gap_ls.fixes.lock import STATEMENTS, common_block, parent_map

_EMPTY = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def get_or_create(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if method_name(call) == "get_or_create":
        return tree.module
    if method_name(call) != "create" or not isinstance(call.func, cst.Attribute):
        raise FixNotApplicable("not a `.create(...)` call")
    lookup_source = list(hint.data.get("lookup") or [])
    lookup = [cst.parse_expression(f"f({arg})").args[0] for arg in lookup_source]  # type: ignore[attr-defined]
    keys = {arg.keyword.value for arg in lookup if arg.keyword is not None}
    defaults = [arg for arg in call.args if arg.keyword is None or arg.keyword.value not in keys]
    if any(arg.keyword is None for arg in defaults):
        raise FixNotApplicable("create() takes positional arguments")
    args = [*_comma_separated(lookup)]
    if defaults:
        entries = ", ".join(f'"{a.keyword.value}": {code(a.value)}' for a in defaults)  # type: ignore[union-attr]
        args.append(cst.parse_expression(f"f(defaults={{{entries}}})").args[0])  # type: ignore[attr-defined]
    new_call = call.with_changes(func=call.func.with_changes(attr=cst.Name("get_or_create")), args=_comma_separated(args))
    module = tree.module.deep_replace(call, new_call)
    line = _line_holding(module, new_call)
    note = "was `.create(...)`: race-free only with a unique constraint on " + ", ".join(sorted(keys))
    return module.deep_replace(line, with_trailing_todo(line, note))


def _comma_separated(args: list[cst.Arg]) -> list[cst.Arg]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [arg.with_changes(comma=comma if index < len(args) - 1 else cst.MaybeSentinel.DEFAULT)
            for index, arg in enumerate(args)]


def handle_duplicate(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    first = tree.find(hint.target, STATEMENTS)
    parents = parent_map(tree.module)
    if _guarded_by_integrity_error(first, parents):
        return tree.module
    last_span = hint.spans.get("last")
    last = tree.find(last_span, STATEMENTS) if last_span is not None else first
    block, start, stop = common_block(first, last, parents)
    body = [s.with_changes(leading_lines=[]) if i == 0 else s for i, s in enumerate(block.body[start : stop + 1])]
    django = hint.data.get("orm") == "django"
    if django:
        additions.need_from_import("django.db", "IntegrityError")
        additions.need_from_import("django.db", "transaction")
        body = [cst.With(items=[cst.WithItem(item=cst.parse_expression("transaction.atomic()"))], body=cst.IndentedBlock(body=body))]
    else:
        additions.need_from_import("sqlalchemy.exc", "IntegrityError")
    handler_body: list[cst.BaseStatement] = []
    if not django:
        session = _session_of(block.body[start : stop + 1])
        if session is not None:
            handler_body.append(cst.parse_statement(f"{session}.rollback()"))
    handler_body.append(
        with_trailing_todo(
            cst.SimpleStatementLine(body=[cst.Raise()]),
            "a concurrent request created the row first: return the existing one if that is not an error",
        )
    )
    statement = cst.Try(
        body=cst.IndentedBlock(body=body),
        handlers=[cst.ExceptHandler(type=cst.Name("IntegrityError"), body=cst.IndentedBlock(body=handler_body))],
        leading_lines=block.body[start].leading_lines,
    )
    new_block = block.with_changes(body=[*block.body[:start], statement, *block.body[stop + 1 :]])
    return tree.module.deep_replace(block, new_block)


def _guarded_by_integrity_error(statement: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> bool:
    node: cst.CSTNode | None = statement
    while node is not None and not isinstance(node, cst.FunctionDef):
        if isinstance(node, cst.Try) and any(
            h.type is not None and (dotted_name(h.type) or "").endswith("IntegrityError") for h in node.handlers
        ):
            return True
        node = parents.get(id(node))
    return False


def _session_of(statements) -> str | None:
    for statement in statements:
        for node in walk(statement):
            if isinstance(node, cst.Call) and method_name(node) in {"add", "commit", "flush"} and isinstance(node.func, cst.Attribute):
                return dotted_name(node.func.value)
    return None


def use_incr(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if method_name(call) in {"incr", "incrby", "add"}:
        return tree.module  # applied already (Django's cache: `add` then `incr`)
    line = _line_holding(tree.module, call)
    if len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
        raise FixNotApplicable("the write's result is used: rewrite it by hand")
    key = code(call.args[0].value)
    client = code(call.func.value) if isinstance(call.func, cst.Attribute) else "cache"
    was = f"was `{code(call)}`"
    awaited = isinstance(line.body[0].value, cst.Await)
    prefix = "await " if awaited else ""
    if hint.data.get("django"):
        timeout = keyword(call, "timeout")
        extra = f", timeout={code(timeout.value)}" if timeout is not None else ""
        new_lines = [
            cst.parse_statement(f"{prefix}{client}.add({key}, 0{extra})"),
            with_trailing_todo(cst.parse_statement(f"{prefix}{client}.incr({key})"),
                               f"{was}; the counter is the value incr returns"),
        ]
    else:
        new_lines = [with_trailing_todo(cst.parse_statement(f"{prefix}{client}.incr({key})"),
                                        f"{was}; set the expiry with expire() if it needs one")]
    new_lines[0] = new_lines[0].with_changes(leading_lines=line.leading_lines)
    return _replace_line(tree.module, line, new_lines)


def set_if_absent(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if method_name(call) == "add" or keyword(call, "nx") is not None:
        return tree.module
    guard_span = hint.spans.get("guard")
    if guard_span is None:
        raise FixNotApplicable("the check is not known")
    guard = tree.find(guard_span, (cst.If,))
    assert isinstance(guard, cst.If)
    line = _line_holding(tree.module, call)
    if len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
        raise FixNotApplicable("the write's result is used: rewrite it by hand")
    awaited = isinstance(line.body[0].value, cst.Await)
    if hint.data.get("django"):
        atomic = call.with_changes(func=call.func.with_changes(attr=cst.Name("add")))  # type: ignore[union-attr]
    else:
        nx = cst.Arg(keyword=cst.Name("nx"), value=cst.Name("True"),
                     equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
        atomic = call.with_changes(args=[*_comma_separated([*call.args, nx])])
    test: cst.BaseExpression = cst.Await(atomic) if awaited else atomic
    header = cst.TrailingWhitespace(
        whitespace=cst.SimpleWhitespace("  "),
        comment=todo(f"was `{code(call)}` after the check above: now the store decides who wins"),
    )
    statement = cst.If(
        test=cst.UnaryOperation(operator=cst.Not(), expression=test),
        body=cst.IndentedBlock(body=list(body_statements(guard)), header=header),
        leading_lines=line.leading_lines,
    )
    return _replace_line(tree.module, line, [statement])


def _line_holding(module: cst.Module, node: cst.CSTNode) -> cst.SimpleStatementLine:
    for candidate in walk(module, enter_definitions=True):
        if isinstance(candidate, cst.SimpleStatementLine) and any(inner is node for inner in walk(candidate)):
            return candidate
    raise FixNotApplicable("the call is not part of a simple statement")


def _replace_line(module: cst.Module, line: cst.SimpleStatementLine, new: list[cst.BaseStatement]) -> cst.Module:
    class Replace(cst.CSTTransformer):
        def leave_SimpleStatementLine(self, original, updated):
            return cst.FlattenSentinel(new) if original is line else updated

    result = module.visit(Replace())
    assert isinstance(result, cst.Module)
    return result
