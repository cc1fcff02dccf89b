"""The rule framework: the Rule base class, what a rule reports, and the unit context.

A rule is a libcst BatchableCSTVisitor. The engine runs every enabled rule
over one unit (a top-level statement or class member) in a single batched
traversal; a rule looks at nodes, asks the context about names, scopes and the
module summary, and calls ``report()``. Rules never compute positions (the
engine does, only for reported nodes) and never build edits (``gap_ls.fixes``
does, when a user asks): they record the facts a fix needs in a FixRequest.

The class docstring of a rule is its documentation (see ``ruledocs``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import CodeRange

from gap_ls.core.concurrency import Discipline, Evidence, Reach
from gap_ls.core.model import Family, Position, Severity
from gap_ls.core.nodes import call_name, dotted_name, node_positions
from gap_ls.core.resolve import ExternalFunction, Resolver
from gap_ls.core.settings import Settings
from gap_ls.core.source import Unit
from gap_ls.core.summary import FunctionInfo, ModuleSummary, UnitFacts

# Calls that end the process or raise by contract, wherever they are imported from.
NO_RETURN_CALLS = frozenset(
    {
        "sys.exit",
        "builtins.exit",
        "builtins.quit",
        "os._exit",
        "os.abort",
        "flask.abort",
        "werkzeug.exceptions.abort",
        "fastapi.HTTPException",
        "pytest.fail",
        "pytest.skip",
        "pytest.exit",
        "typer.Exit",
    }
)
# Receiver/method pairs that raise by contract: argparse's parser.error exits, click's
# ctx.fail raises, unittest's self.fail raises, Celery's self.retry raises Retry, gRPC's
# context.abort raises.
NO_RETURN_METHODS = frozenset(
    {
        ("parser", "error"),
        ("parser", "exit"),
        ("self", "fail"),
        ("self", "retry"),
        ("task", "retry"),
        ("ctx", "fail"),
        ("ctx", "exit"),
        ("ctx", "abort"),
        ("context", "abort"),
    }
)


@dataclass(frozen=True)
class FixRequest:
    kind: str
    title: str
    target: cst.CSTNode
    data: Mapping[str, Any] = field(default_factory=dict)
    # More nodes the fix needs, by name; each reaches the fix as a span (FixHint.spans).
    nodes: Mapping[str, cst.CSTNode] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    code: str
    node: cst.CSTNode
    message: str
    header: bool
    checked: tuple[str, ...]
    unverifiable: tuple[str, ...]
    related: tuple[tuple[cst.CSTNode, str], ...]
    fixes: tuple[FixRequest, ...]
    anchor: cst.CSTNode | None


class UnitContext:
    """What a rule may know while visiting one unit: parents, scopes, names, the summary."""

    def __init__(
        self,
        unit: Unit,
        summary: ModuleSummary,
        settings: Settings,
        module: cst.Module | None = None,
        source: str = "",
        path: Path | None = None,
        resolver: Resolver | None = None,
        line_offset: int = 0,
    ) -> None:
        self.unit = unit
        self.summary = summary
        self.settings = settings
        self.module = module
        self.source = source
        self.path = path
        self.resolver = resolver
        self.line_offset = line_offset  # where the unit really starts when analysed at line 0
        self._parents: dict[int, cst.CSTNode] = {}
        self._stack: list[cst.CSTNode] = []
        self._positions: Mapping[cst.CSTNode, CodeRange] | None = None
        self.cache: dict[tuple[str, int], Any] = {}
        # Summary facts read while analysing (functions looked up, found or not; questions to
        # the concurrency model) and their values: when one changes elsewhere in the file, this
        # unit's findings must be recomputed. Keys as ModuleSummary.fact takes them.
        self.dependencies: dict[tuple, object] = {}
        self.max_depth = 0  # deepest node nesting seen while traversing

    # -- traversal hooks (called by the engine around every node) --------------
    def enter(self, node: cst.CSTNode) -> None:
        if self._stack:
            self._parents[id(node)] = self._stack[-1]
        self._stack.append(node)
        self.max_depth = max(self.max_depth, len(self._stack))

    def leave(self, node: cst.CSTNode) -> None:
        self._stack.pop()

    # -- structure ----------------------------------------------------------------
    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self._parents.get(id(node))

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        current = self._parents.get(id(node))
        while current is not None:
            yield current
            current = self._parents.get(id(current))

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, cst.FunctionDef):
                return ancestor
        return None

    def enclosing_statement(self, node: cst.CSTNode) -> cst.CSTNode:
        """The statement line or compound statement that contains ``node``."""
        current: cst.CSTNode = node
        for ancestor in self.ancestors(node):
            if isinstance(current, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return current
            current = ancestor
        return current

    def qualname(self, definition: cst.FunctionDef | cst.ClassDef) -> str:
        """`Class.method.inner`: the definition's name under its enclosing classes and functions."""
        names = [definition.name.value]
        for ancestor in self.ancestors(definition):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
                names.append(ancestor.name.value)
        return ".".join([*self.unit.class_path, *reversed(names)])

    def class_name(self, function: cst.FunctionDef) -> str | None:
        """Qualified name of the class ``function`` is a method of, if it is one."""
        parent = self.parent(function)
        # FunctionDef -> IndentedBlock -> ClassDef, or a unit that is a class member.
        grand = self.parent(parent) if parent is not None else None
        if isinstance(grand, cst.ClassDef):
            return self.qualname(grand)
        if parent is None and self.unit.class_path:
            return ".".join(self.unit.class_path)
        return None

    def depend(self, key: tuple) -> object:
        """Read a summary fact (see ModuleSummary.fact), remembering it as a dependency."""
        if key not in self.dependencies:
            self.dependencies[key] = self.summary.fact(key)
        return self.dependencies[key]

    def function_info(self, function: cst.FunctionDef) -> FunctionInfo | None:
        qualname = self.qualname(function)
        self.depend(("function", qualname))
        return self.summary.function(qualname)

    def resolve_function(self, name: str, scope: str | None, class_name: str | None) -> FunctionInfo | None:
        """The summary's function for a name used inside ``scope`` (recorded as a dependency)."""
        for candidate in self.summary.candidates(name, scope, class_name):
            self.depend(("function", candidate))
        return self.summary.resolve_function(name, scope, class_name)

    # -- concurrency (the model is built on first use; every answer is a dependency) -----------
    def reach(self, qualname: str) -> Reach | None:
        """How the function ``qualname`` can run concurrently, if the module shows it."""
        self.depend(("reach", qualname))
        return self.summary.concurrency().reach(qualname)

    def single_writer(self, qualname: str) -> str | None:
        return self.depend(("single-writer", qualname))  # type: ignore[return-value]

    def evidence(self) -> Evidence:
        self.depend(("evidence",))
        return self.summary.concurrency().evidence

    def discipline(self, class_name: str) -> Discipline:
        """The lock discipline of a class ("" for the module's globals)."""
        self.depend(("discipline", class_name))
        return self.summary.concurrency().discipline(class_name)

    def writers_of_global(self, name: str) -> frozenset[str]:
        return self.depend(("global-writers", name))  # type: ignore[return-value]

    def is_optimistic(self, class_name: str) -> bool:
        """Whether the model class declares a version column (optimistic locking)."""
        return bool(self.depend(("optimistic", class_name)))

    def is_async(self, node: cst.CSTNode) -> bool:
        function = node if isinstance(node, cst.FunctionDef) else self.enclosing_function(node)
        return function is not None and function.asynchronous is not None

    # -- positions and other modules ------------------------------------------------------
    def positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        """Ranges of the unit's nodes, in unit coordinates (computed once, on first use)."""
        assert self.module is not None, "positions of a unit that was not parsed"
        if self._positions is None:
            self._positions = node_positions(self.module)
        return self._positions

    def position_of(self, node: cst.CSTNode) -> Position | None:
        """Where ``node`` starts in the file (computed for this unit on first use only)."""
        if self.module is None:
            return None
        code_range = self.positions().get(node)
        if code_range is None:
            return None
        line = code_range.start.line - 1 + self.unit.line_offset() + self.line_offset
        return Position(line, code_range.start.column)

    def resolve_external(self, node: cst.CSTNode) -> ExternalFunction | None:
        """The function a name defined in another module refers to (jedi), if a resolver is set."""
        if self.resolver is None:
            return None
        target = node.attr if isinstance(node, cst.Attribute) else node
        position = self.position_of(target)
        if position is None:
            return None
        return self.resolver.resolve_function(self.source, self.path, position)

    # -- names --------------------------------------------------------------------
    def qualify(self, node: cst.CSTNode | None) -> str | None:
        name = dotted_name(node)
        return self.summary.qualify(name) if name is not None else None

    def qualify_call(self, node: cst.CSTNode | None) -> str | None:
        name = call_name(node)
        return self.summary.qualify(name) if name is not None else None

    def never_returns(self, call: cst.Call) -> bool:
        """True for calls that raise or exit by contract (used by the flow analysis)."""
        qualified = self.qualify_call(call)
        if qualified is None:
            return False
        if qualified in NO_RETURN_CALLS:
            return True
        owner, _, method = qualified.rpartition(".")
        if (owner.split(".")[-1], method) in NO_RETURN_METHODS:
            return True
        scope = self.enclosing_function(call)
        info = self.resolve_function(
            qualified,
            self.qualname(scope) if scope is not None else None,
            self.class_name(scope) if scope is not None else None,
        )
        return info is not None and info.never_returns


class Rule(cst.BatchableCSTVisitor):
    """Base class of every rule; subclasses set the class attributes and visit nodes."""

    code: ClassVar[str]
    name: ClassVar[str]
    family: ClassVar[Family]
    severity: ClassVar[Severity] = Severity.WARNING
    title: ClassVar[str]
    # Substrings one of which a unit must contain for this rule to have anything to
    # look at; the engine skips parsing units that no enabled rule wants. None: always run.
    triggers: ClassVar[tuple[str, ...] | None] = None
    # Meta rules are produced by the engine itself and have no visitor logic.
    meta: ClassVar[bool] = False
    # Regressions only a comparison of two versions shows (gap_ls.core.review): never reported
    # by an analysis of one version.
    diff_only: ClassVar[bool] = False

    def __init__(self, context: UnitContext) -> None:
        super().__init__()
        self.context = context
        self.reports: list[Report] = []

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        header: bool = True,
        checked: tuple[str, ...] | list[str] = (),
        unverifiable: tuple[str, ...] | list[str] = (),
        related: tuple[tuple[cst.CSTNode, str], ...] | list[tuple[cst.CSTNode, str]] = (),
        fixes: tuple[FixRequest, ...] | list[FixRequest] = (),
        anchor: cst.CSTNode | None = None,
    ) -> None:
        self.reports.append(
            Report(
                code=self.code,
                node=node,
                message=message,
                header=header,
                checked=tuple(checked),
                unverifiable=tuple(unverifiable),
                related=tuple(related),
                fixes=tuple(fixes),
                anchor=anchor,
            )
        )

    def finish(self) -> None:
        """Called after the traversal of a unit, when every node's parent is known."""

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        """Whether a unit with these facts can hold anything for this rule (a cheap filter run
        before libcst parses the unit); facts None means unknown. ``found``: the rule's trigger
        words (or their import aliases) that occur in the unit."""
        return True

    @classmethod
    def triggers_for(cls, imports: Mapping[str, str]) -> tuple[str, ...] | None:
        """The triggers plus every import alias of a name that contains one
        (`from contextlib import suppress as quietly` adds "quietly")."""
        if cls.triggers is None:
            return None
        aliases = tuple(alias for alias, name in imports.items() if any(t in name for t in cls.triggers))
        return cls.triggers + aliases
