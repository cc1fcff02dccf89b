"""Small libcst helpers shared by rules: names, walking a scope, reading literals.

Pure functions over libcst nodes; no rule knowledge and no LSP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import libcst as cst
from libcst.metadata import CodeRange, PositionProvider

DEFINITIONS = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def node_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """Every node's range, as libcst's ``PositionProvider`` computes it.

    Run directly rather than through ``MetadataWrapper.resolve``, which also runs a batched
    visit (for providers we do not use) that rebuilds every node of the tree and costs as much
    as the code generation the positions come from. ``_gen_impl`` and ``_computed`` are
    libcst's provider hooks; tests compare every finding's position, so a change there shows.
    """
    provider = PositionProvider()
    provider._gen_impl(module)
    return provider._computed


def dotted_name(node: cst.CSTNode | None) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None (calls, subscripts...)."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def call_name(node: cst.CSTNode | None) -> str | None:
    """The dotted name of what a call calls (``requests.post`` for ``requests.post(...)``)."""
    if isinstance(node, cst.Call):
        return dotted_name(node.func)
    return None


def method_name(call: cst.Call) -> str | None:
    """The last attribute of the called expression: ``submit`` for ``pool.submit(...)``."""
    if isinstance(call.func, cst.Attribute):
        return call.func.attr.value
    if isinstance(call.func, cst.Name):
        return call.func.value
    return None


def receiver(call: cst.Call) -> cst.BaseExpression | None:
    return call.func.value if isinstance(call.func, cst.Attribute) else None


def keyword(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The node's child nodes, read straight from its fields.

    libcst's own ``node.children`` (and any ``node.visit``) rebuilds the subtree through its
    visitor machinery, which is most of the cost of analysing a unit; this does not.
    """
    names = _CHILD_FIELDS.get(type(node))
    if names is None:
        names = _CHILD_FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    found: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        kind = type(value)
        if kind is cst.SimpleWhitespace or value is None:
            continue  # plain spaces: never a comment, never code
        if kind is tuple or kind is list:
            found.extend(item for item in value if isinstance(item, cst.CSTNode))
        elif isinstance(value, cst.CSTNode):
            found.append(value)
    return found


def walk(node: cst.CSTNode, *, enter_definitions: bool = False) -> Iterator[cst.CSTNode]:
    """Pre-order walk; by default nested functions, classes and lambdas are not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is not node and not enter_definitions and isinstance(current, DEFINITIONS):
            continue
        stack.extend(reversed(children(current)))


def walk_body(statements: tuple[cst.CSTNode, ...] | list[cst.CSTNode]) -> Iterator[cst.CSTNode]:
    for statement in statements:
        yield from walk(statement)


def body_statements(node: cst.CSTNode) -> tuple[cst.BaseStatement | cst.BaseSmallStatement, ...]:
    """Statements of a suite (indented block or one-line ``if x: pass``)."""
    body = getattr(node, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return tuple(body.body)
    if isinstance(body, cst.SimpleStatementSuite):
        return tuple(body.body)
    return ()


def small_statements(statement: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
    if isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return tuple(statement.body)
    return (statement,)


def names_in(node: cst.CSTNode) -> set[str]:
    """Every bare name mentioned in ``node`` (not entering nested definitions)."""
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def int_value(node: cst.CSTNode | None) -> int | None:
    if isinstance(node, cst.Integer):
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            return None
    return None


def string_value(node: cst.CSTNode | None) -> str | None:
    if isinstance(node, cst.SimpleString):
        try:
            value = node.evaluated_value
        except (ValueError, SyntaxError):  # not a plain literal (e.g. unusual prefixes)
            return None
        return value if isinstance(value, str) else None
    return None


def assigned_names(target: cst.CSTNode) -> Iterator[str]:
    """Names bound by an assignment target (``a``, ``a, (b, *c)``)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from assigned_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from assigned_names(target.value)


def statement_targets(statement: cst.CSTNode) -> Iterator[cst.BaseExpression]:
    """The targets an assignment-like small statement writes to."""
    if isinstance(statement, cst.Assign):
        for target in statement.targets:
            yield target.target
    elif isinstance(statement, (cst.AnnAssign, cst.AugAssign)):
        yield statement.target


def is_true(node: cst.CSTNode | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"
