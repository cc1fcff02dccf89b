"""Fixes for the idempotency family (GAP301–GAP305).

*Add an idempotency key* (GAP301, GAP305): passes a key to the side effect in the form its
library takes — `idempotency_key=` (Stripe-style SDKs), an `Idempotency-Key` header
(requests, httpx, aiohttp), `MessageDeduplicationId` (SQS/SNS FIFO), `task_id=` (Celery),
`name=` (Step Functions). The key is stable across attempts: derived from an id in scope
(`order.id`, an `*_id` parameter, `self.request.id` in a bound Celery task); else minted once
— before a retry loop, or by an outer function that calls the retried one (renamed
`_<name>_attempt`) with it.

*Move key creation out of the retry* (GAP302): the key made inside the loop is assigned once
before it; a decorated function is split the same way, its caller-facing half minting the
key; a bound Celery task uses `self.request.id`, which stays the same across its retries.

*Limit HTTP retries to idempotent methods* (GAP303): `allowed_methods` becomes urllib3's
`Retry.DEFAULT_ALLOWED_METHODS`.

*Record the message id first* (GAP304, Django): `cache.add` on the message id before the first
effect; a duplicate delivery returns early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from gap_ls.core.idempotency import FRESH_KEY_CALLS, KEY_ARGUMENTS, KEY_WORDS, RETRY_DECORATORS
from gap_ls.core.model import FixHint
from gap_ls.core.nodes import call_name, dotted_name, keyword, walk
from gap_ls.fixes.edits import FixNotApplicable, ModuleAdditions, UnitTree, todo
from gap_ls.fixes.lock import parent_map

KEY = "idempotency_key"
_EMPTY = cst.Module(body=[])
_KEY_NOTE = "one key per logical operation; check the service honours it and for how long"


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


# -- rewriting by the original nodes' identity ----------------------------------------------------


@dataclass
class Rewrite(cst.CSTTransformer):
    """Several edits in one pass, each addressed by an original node (ids stay valid while the
    transformer walks the original tree; after a `deep_replace` they would not)."""

    replace: dict[int, Callable[[cst.CSTNode], cst.CSTNode]] = field(default_factory=dict)
    before: dict[int, list[cst.BaseStatement]] = field(default_factory=dict)
    after: dict[int, list[cst.BaseStatement]] = field(default_factory=dict)
    remove: set[int] = field(default_factory=set)
    todos: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        updated = updated_node
        if id(original_node) in self.replace:
            updated = self.replace[id(original_node)](updated)
        if id(original_node) in self.todos:
            updated = _with_todo(updated, self.todos[id(original_node)])
        if isinstance(original_node, (cst.IndentedBlock, cst.Module)) and isinstance(updated, type(original_node)):
            body: list[cst.CSTNode] = []
            for old, new in zip(original_node.body, updated.body):  # type: ignore[attr-defined]
                body += self.before.get(id(old), [])
                if id(old) not in self.remove:
                    body.append(new)
                body += self.after.get(id(old), [])
            updated = updated.with_changes(body=body or [cst.SimpleStatementLine([cst.Pass()])])
        return updated

    def apply(self, module: cst.Module) -> cst.Module:
        result = module.visit(self)
        assert isinstance(result, cst.Module)
        return result


def statement_of(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> cst.CSTNode:
    """The statement line holding ``node``, or the compound statement whose header does."""
    current: cst.CSTNode | None = node
    while current is not None and not isinstance(current, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        current = parents.get(id(current))
    if current is None:
        raise FixNotApplicable("not in a statement")
    return current


def enclosing_function(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> cst.FunctionDef | None:
    current = parents.get(id(node))
    while current is not None and not isinstance(current, cst.FunctionDef):
        current = parents.get(id(current))
    return current


def _with_todo(statement, note: str):  # type: ignore[no-untyped-def]
    """The TODO at the end of the statement line (or a compound statement's header), after the
    comment already there (kept)."""
    if isinstance(statement, cst.SimpleStatementLine):
        trailing = statement.trailing_whitespace
    elif isinstance(getattr(statement, "body", None), cst.IndentedBlock):
        trailing = statement.body.header
    else:
        raise FixNotApplicable("no line end to put a TODO on")
    existing = trailing.comment
    comment = todo(note) if existing is None else cst.Comment(f"{existing.value}  {todo(note).value}")
    whitespace = trailing.whitespace if existing is not None else cst.SimpleWhitespace("  ")
    new = trailing.with_changes(whitespace=whitespace, comment=comment)
    if isinstance(statement, cst.SimpleStatementLine):
        return statement.with_changes(trailing_whitespace=new)
    return statement.with_changes(body=statement.body.with_changes(header=new))


# -- add a key -----------------------------------------------------------------------------------


def add_key(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    if has_key(call):
        return tree.module
    form = str(hint.data.get("form", ""))
    if not form:
        raise FixNotApplicable("this call takes no idempotency key")
    parents = parent_map(tree.module)
    statement = statement_of(call, parents)
    rewrite = Rewrite()
    stable = str(hint.data.get("stable", ""))
    operation = str(hint.data.get("operation", "op"))
    if stable:
        quote = "'" if '"' in stable else '"'
        value = stable if stable == "self.request.id" else f"f{quote}{operation}-{{{stable}}}{quote}"
        _add_key_to(rewrite, call, statement, form, value, f"derived from `{stable}`: {_KEY_NOTE}")
        return rewrite.apply(tree.module)
    scope = str(hint.data.get("scope", ""))
    if scope == "loop" and "scope" in hint.spans:
        loop = tree.find(hint.spans["scope"], (cst.For, cst.While))
        _add_key_to(rewrite, call, statement, form, KEY, f"minted once before the retry loop: {_KEY_NOTE}")
        rewrite.before[id(loop)] = [cst.parse_statement(f"{KEY} = str({_uuid(tree, additions)}())\n")]
        return rewrite.apply(tree.module)
    function = enclosing_function(call, parents)
    if function is not None:
        _add_key_to(rewrite, call, statement, form, KEY, f"taken from the caller, made once per operation: {_KEY_NOTE}")
        split_retried(tree, rewrite, function, KEY, f"str({_uuid(tree, additions)}())")
        return rewrite.apply(tree.module)
    raise FixNotApplicable("no stable id and no place to mint a key")


def has_key(call: cst.Call) -> bool:
    for arg in call.args:
        name = arg.keyword.value if arg.keyword is not None else ""
        if name in KEY_ARGUMENTS or any(word in name.lower() for word in KEY_WORDS):
            return True
        if any(word in code(arg.value).lower() for word in KEY_WORDS):
            return True
    return False


def _add_key_to(rewrite: Rewrite, call: cst.Call, statement: cst.CSTNode, form: str, value: str,
                note: str) -> None:
    expression = cst.parse_expression(value)
    if form == "header":
        rewrite.replace[id(call)] = lambda updated: _with_header(updated, expression)  # type: ignore[arg-type]
    else:
        name = {"kwarg": KEY, "sqs": "MessageDeduplicationId", "task_id": "task_id", "name": "name"}.get(form)
        if name is None:
            raise FixNotApplicable(f"unknown key form {form!r}")
        if form == "sqs":
            note = "SQS/SNS FIFO only (a standard queue ignores it): " + note
        arg = cst.Arg(keyword=cst.Name(name), value=expression,
                      equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        rewrite.replace[id(call)] = lambda updated: _append_arg(updated, arg)  # type: ignore[arg-type]
    rewrite.todos[id(statement)] = note


def _with_header(call: cst.Call, value: cst.BaseExpression) -> cst.Call:
    element = cst.DictElement(cst.SimpleString('"Idempotency-Key"'), value)
    headers = keyword(call, "headers")
    if headers is None:
        arg = cst.Arg(keyword=cst.Name("headers"), value=cst.Dict([element]),
                      equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        return _append_arg(call, arg)
    if isinstance(headers.value, cst.Dict):
        elements = list(headers.value.elements)
        if elements:
            elements[-1] = elements[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new_value: cst.BaseExpression = headers.value.with_changes(elements=[*elements, element])
    else:
        new_value = cst.Dict([cst.StarredDictElement(headers.value, comma=cst.Comma(
            whitespace_after=cst.SimpleWhitespace(" "))), element])
    return call.with_changes(args=[a if a is not headers else a.with_changes(value=new_value) for a in call.args])


def _append_arg(call: cst.Call, arg: cst.Arg) -> cst.Call:
    args = list(call.args)
    if not args:
        return call.with_changes(args=[arg])
    last = args[-1]
    trailing = last.comma if isinstance(last.comma, cst.Comma) else None
    if trailing is not None and "\n" in code(trailing):
        # One argument per line: keep the layout, the new one goes last with the same comma.
        return call.with_changes(args=[*args, arg.with_changes(comma=trailing)])
    args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*args, arg])


def _uuid(tree: UnitTree, additions: ModuleAdditions) -> str:
    for alias, qualified in tree.summary.imports.items():
        if qualified == "uuid":
            return f"{alias}.uuid4"
        if qualified == "uuid.uuid4":
            return alias
    additions.need_import("uuid")
    return "uuid.uuid4"


# -- split a decorated function: the caller's half mints the key -----------------------------------------


def split_retried(tree: UnitTree, rewrite: Rewrite, function: cst.FunctionDef, parameter: str, mint: str) -> None:
    """`@retry def f(a)` becomes `@retry def _f_attempt(a, *, key)` and, after it, `def f(a)`
    that calls it once with a key minted there."""
    if not function.decorators or not all(_is_retry(tree, d) for d in function.decorators):
        raise FixNotApplicable("the function has decorators other than the retry")
    params = function.params
    if any(p.name.value == parameter for p in (*params.params, *params.kwonly_params, *params.posonly_params)):
        raise FixNotApplicable(f"the function already takes `{parameter}`")
    inner_name = f"_{function.name.value.lstrip('_')}_attempt"
    new_param = cst.Param(cst.Name(parameter))
    if isinstance(params.star_arg, cst.Param):
        inner_params = params.with_changes(kwonly_params=[*params.kwonly_params, new_param])
    else:
        inner_params = params.with_changes(star_arg=cst.ParamStar(), kwonly_params=[*params.kwonly_params, new_param])
    previous = rewrite.replace.get(id(function))

    def rename(updated: cst.CSTNode) -> cst.CSTNode:
        if previous is not None:
            updated = previous(updated)
        assert isinstance(updated, cst.FunctionDef)
        return updated.with_changes(name=cst.Name(inner_name), params=inner_params)

    rewrite.replace[id(function)] = rename
    rewrite.after[id(function)] = [_outer(function, inner_name, parameter, mint)]


def _is_retry(tree: UnitTree, decorator: cst.Decorator) -> bool:
    target = decorator.decorator
    name = dotted_name(target.func if isinstance(target, cst.Call) else target)
    return name is not None and tree.qualify(name) in RETRY_DECORATORS


def _outer(function: cst.FunctionDef, inner_name: str, parameter: str, mint: str) -> cst.FunctionDef:
    params = function.params
    forwarded = [p.name.value for p in (*params.posonly_params, *params.params)]
    method = bool(forwarded) and forwarded[0] in ("self", "cls")
    target = f"{forwarded[0]}.{inner_name}" if method else inner_name
    args = forwarded[1:] if method else forwarded
    if isinstance(params.star_arg, cst.Param):
        args.append(f"*{params.star_arg.name.value}")
    args += [f"{p.name.value}={p.name.value}" for p in params.kwonly_params]
    if isinstance(params.star_kwarg, cst.Param):
        args.append(f"**{params.star_kwarg.name.value}")
    args.append(f"{parameter}={mint}")
    awaited = "await " if function.asynchronous is not None else ""
    returns = code(function.returns) if function.returns is not None else ""
    source = (
        f"{'async ' if function.asynchronous else ''}def {function.name.value}({code(params)}){returns}:\n"
        "    # TODO(gap-ls): one key per call, made before the retries; derive it from a stable id if the caller has one\n"
        f"    return {awaited}{target}({', '.join(args)})\n"
    )
    outer = cst.parse_statement(source)
    assert isinstance(outer, cst.FunctionDef)
    return outer.with_changes(leading_lines=[cst.EmptyLine(indent=False)] * (1 if method else 2))


# -- GAP302: move the key out of the retried scope ------------------------------------------------------


def hoist_key(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    try:
        made = tree.find(hint.target, (cst.Call,))
    except FixNotApplicable:
        return tree.module  # the key is no longer made here (moved already)
    assert isinstance(made, cst.Call)
    name = call_name(made)
    if name is None or tree.qualify(name) not in FRESH_KEY_CALLS:
        return tree.module
    parents = parent_map(tree.module)
    value, slot = _key_value(made, parents)
    statement = statement_of(made, parents)
    rewrite = Rewrite()
    note = "made once, before the retries: every attempt sends the same key"
    if hint.data.get("scope") == "loop" and "scope" in hint.spans:
        loop = tree.find(hint.spans["scope"], (cst.For, cst.While))
        if not _inside(made, loop, parents):
            return tree.module
        if _assigns_name(slot) and len(statement.body) == 1:
            rewrite.remove.add(id(statement))
            rewrite.before[id(loop)] = [_with_todo(statement.with_changes(leading_lines=[]), note)]
        else:
            rewrite.replace[id(value)] = lambda _: cst.Name(KEY)
            moved = cst.parse_statement(f"{KEY} = {code(value)}\n")
            assert isinstance(moved, cst.SimpleStatementLine)
            rewrite.before[id(loop)] = [_with_todo(moved, note)]
        return rewrite.apply(tree.module)
    function = enclosing_function(made, parents)
    if function is None:
        return tree.module
    if _is_bound_task(function):
        rewrite.replace[id(value)] = lambda _: cst.parse_expression("self.request.id")
        rewrite.todos[id(statement)] = f"was `{code(value)}`; `self.request.id` stays the same across this task's retries"
        return rewrite.apply(tree.module)
    if _assigns_name(slot) and len(statement.body) == 1:
        parameter = slot.targets[0].target.value  # type: ignore[union-attr]
        rewrite.remove.add(id(statement))
    else:
        parameter = KEY
        rewrite.replace[id(value)] = lambda _: cst.Name(KEY)
    split_retried(tree, rewrite, function, parameter, code(value))
    return rewrite.apply(tree.module)


def _assigns_name(slot: cst.CSTNode) -> bool:
    return isinstance(slot, cst.Assign) and len(slot.targets) == 1 and isinstance(slot.targets[0].target, cst.Name)


def _key_value(made: cst.Call, parents: dict[int, cst.CSTNode]) -> tuple[cst.BaseExpression, cst.CSTNode]:
    """The whole key expression the fresh call is part of, and what holds it (an Assign, an Arg,
    a dict entry)."""
    current: cst.CSTNode = made
    while True:
        parent = parents.get(id(current))
        keyed_arg = isinstance(parent, cst.Arg) and parent.keyword is not None  # not `str(uuid4())`'s argument
        if parent is None or keyed_arg or isinstance(parent, (cst.Assign, cst.DictElement, cst.AnnAssign)):
            assert isinstance(current, cst.BaseExpression)
            return current, parent if parent is not None else current
        current = parent


def _inside(node: cst.CSTNode, container: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> bool:
    current: cst.CSTNode | None = node
    while current is not None:
        if current is container:
            return True
        current = parents.get(id(current))
    return False


def _is_bound_task(function: cst.FunctionDef) -> bool:
    params = function.params.params
    if not params or params[0].name.value != "self":
        return False
    for decorator in function.decorators:
        target = decorator.decorator
        if isinstance(target, cst.Call) and (name := dotted_name(target.func)) and name.endswith("task"):
            bind = keyword(target, "bind")
            if bind is not None and isinstance(bind.value, cst.Name) and bind.value.value == "True":
                return True
    return False


# -- GAP303: idempotent methods only ----------------------------------------------------------------------


def safe_methods(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    assert isinstance(call, cst.Call)
    replacement = cst.parse_expression(f"{dotted_name(call.func) or 'Retry'}.DEFAULT_ALLOWED_METHODS")
    unsafe = [a for a in call.args if a.keyword is not None and a.keyword.value in ("allowed_methods", "method_whitelist")
              and code(a.value) != code(replacement)]
    if not unsafe:
        return tree.module
    was = ", ".join(f"{a.keyword.value}={code(a.value)}" for a in unsafe)  # type: ignore[union-attr]
    args = [a.with_changes(keyword=cst.Name("allowed_methods"), value=replacement) if a in unsafe else a
            for a in call.args]
    rewrite = Rewrite()
    rewrite.replace[id(call)] = lambda updated: updated.with_changes(args=args)  # type: ignore[attr-defined]
    rewrite.todos[id(statement_of(call, parent_map(tree.module)))] = (
        f"was `{was}`: retry POST/PATCH only with an Idempotency-Key header")
    return rewrite.apply(tree.module)


# -- GAP304: record the message id first (Django) ----------------------------------------------------------


def record_first(tree: UnitTree, additions: ModuleAdditions, hint: FixHint) -> cst.Module:
    call = tree.find(hint.target, (cst.Call,))
    function = enclosing_function(call, parent_map(tree.module))
    if function is None:
        raise FixNotApplicable("the handler is gone")
    if any(isinstance(n, cst.Call) and (call_name(n) or "").endswith(".add") and "processed:" in code(n)
           for n in walk(function)):
        return tree.module  # the guard is there already
    identifier = str(hint.data.get("id", ""))
    if not identifier:
        raise FixNotApplicable("no message or event id in sight to record")
    parents = parent_map(tree.module)
    statement = statement_of(call, parents)
    cache = _cache_name(tree, additions)
    if _is_view(function):
        if "HttpResponse" not in tree.summary.imports:
            additions.need_from_import("django.http", "HttpResponse")
        leave = "return HttpResponse(status=200)"
    else:
        leave = "continue" if _in_loop(statement, function, parents) else "return"
    quote = "'" if '"' in identifier else '"'
    guard = cst.parse_statement(
        f"if not {cache}.add(f{quote}processed:{{{identifier}}}{quote}, 1, timeout=7 * 24 * 3600):\n"
        f"    {leave}  # already handled: a redelivery\n"
    )
    guard = guard.with_changes(leading_lines=[cst.EmptyLine(comment=todo(
        "record the id before acting; for a database effect a unique insert in its transaction is safer"))])
    rewrite = Rewrite(before={id(statement): [guard]})
    return rewrite.apply(tree.module)


def _cache_name(tree: UnitTree, additions: ModuleAdditions) -> str:
    for alias, qualified in tree.summary.imports.items():
        if qualified == "django.core.cache.cache":
            return alias
    additions.need_from_import("django.core.cache", "cache")
    return "cache"


def _is_view(function: cst.FunctionDef) -> bool:
    return any(p.name.value == "request" for p in function.params.params)


def _in_loop(statement: cst.CSTNode, function: cst.FunctionDef, parents: dict[int, cst.CSTNode]) -> bool:
    current = parents.get(id(statement))
    while current is not None and current is not function:
        if isinstance(current, (cst.For, cst.While)):
            return True
        current = parents.get(id(current))
    return False
