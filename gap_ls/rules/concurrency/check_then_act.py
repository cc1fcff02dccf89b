"""GAP203 check-then-act."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

import libcst as cst

from gap_ls.core.concurrency import may_run_concurrently, reached
from gap_ls.core.flow import Exit, block_exits
from gap_ls.core.nodes import body_statements, dotted_name, keyword, method_name, receiver, string_value, walk
from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.concurrency.shared import (
    CONSTRUCTION,
    FunctionRule,
    Scope,
    State,
    code,
    lock_fix,
    statement_of,
    subscript_parts,
)

_REWRITE_WORDS = ("load(", "loads(", "read_text")
_TEST_SETUP = re.compile(r"^(setUp|tearDown|setUpClass|tearDownClass|setup_(method|class|module|function)|"
                         r"teardown_(method|class|module|function)|asyncSetUp|asyncTearDown)$")


def _test_code(path, relative, qualname: str) -> bool:  # type: ignore[no-untyped-def]
    """A test module, or a test's set-up/tear-down: a test suite's files are its own, one test at a
    time, unless something in it starts threads (then the function is reached and this is not asked).
    Folders count only inside the project (``relative`` to its root): a checkout may live in one."""
    if _TEST_SETUP.match(qualname.rpartition(".")[2]):
        return True
    if path is None:
        return False
    name = PurePath(path).name
    folders = PurePath(relative).parts[:-1] if relative is not None else ()
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or "tests" in folders or "test" in folders)


_FILE_WORDS = ("exists", "isfile", "isdir", "is_file", "is_dir", *_REWRITE_WORDS)
_EXISTS = frozenset({"os.path.exists", "os.path.isfile", "os.path.isdir", "os.path.lexists", "os.access"})
_PATH_EXISTS = frozenset({"exists", "is_file", "is_dir"})
_CREATE = frozenset({"os.makedirs", "os.mkdir"})
_DELETE = frozenset({"os.remove", "os.unlink", "os.rmdir", "shutil.rmtree"})
_READERS = frozenset({"json.load", "json.loads", "yaml.safe_load", "yaml.load", "pickle.load", "pickle.loads",
                      "tomllib.load", "tomllib.loads", "toml.load", "csv.reader", "csv.DictReader"})
_WRITERS = frozenset({"json.dump", "yaml.safe_dump", "yaml.dump", "pickle.dump", "toml.dump", "csv.writer", "csv.DictWriter"})


@dataclass(frozen=True)
class _Act:
    check: cst.CSTNode  # the `if` statement
    act: cst.CSTNode  # the statement that acts on what was checked
    what: str  # for the message
    kind: str  # "memory" or "file"
    state: State | None
    fix: FixRequest | None = None


class CheckThenAct(FunctionRule):
    """
    ## What it does
    Flags a check followed by an action that is only right if the check still
    holds, with nothing making the pair atomic, in code that runs concurrently:

    - a shared dict: `if key not in cache: cache[key] = ...`, or `if key in
      seen: return` followed by `seen[key] = ...`;
    - lazy initialisation of a shared object: `global _client; if _client is
      None: _client = make()` (also on class attributes and shared `self`);
    - the file system: `os.path.exists(p)` / `Path.exists()` then
      `os.makedirs(p)`, `mkdir()`, `open(p, "w")`, `os.remove(p)`, `unlink()`;
    - a shared file read, changed and written back (`json.load` then `json.dump`
      to the same path) with no lock held.

    Memory state is flagged where several threads run the code (thread and
    executor targets, threaded web handlers, tasks, and what they call); files
    wherever the module is part of a concurrent application (web handlers,
    tasks, workers), since files are shared by processes too. Single-process
    scripts and management commands are not flagged, nor `setdefault`,
    `functools.cache`, double-checked locking, `os.makedirs(exist_ok=True)`,
    `open(p, "x")`, `unlink(missing_ok=True)`, or code under a lock.

    ## Why is this bad?
    Between the check and the act another thread or process can do the same
    check: both see "absent" and both create (two clients, two fetches, an
    `OSError: File exists`), or one deletes what the other just checked
    (`FileNotFoundError`), or both write the file and one update is lost.

    ## What gap-ls cannot verify
    - Whether another thread, process or host really touches the same key or
      file at the same time.
    - Whether creating twice is harmless here (an idempotent cache fill) — then
      the race costs only duplicate work.

    ## Example
    ```python
    @app.delete("/exports/<name>")
    def delete_export(name):
        path = os.path.join(EXPORT_DIR, name)
        if os.path.exists(path):
            os.remove(path)
    ```

    ## Use instead
    ```python
        try:
            os.remove(path)
        except FileNotFoundError:
            pass  # already gone: another worker removed it
    ```
    For dicts, `d.setdefault(k, v)` or a lock around the check and the act; for
    lazy singletons, double-checked locking; for files, `open(p, "x")`,
    `os.makedirs(p, exist_ok=True)`, and a file lock around read-modify-write.

    ## Fix
    *Use an atomic file primitive* (`exist_ok=True`, `missing_ok=True`, `"x"`
    mode, a `FileNotFoundError` handler), or *Guard with a lock* around the check
    and the act.
    """

    code = "GAP203"
    name = "check-then-act"
    title = "Check then act on shared state or a file, with nothing making the pair atomic"
    triggers = ("if ", *_FILE_WORDS)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        if facts is None:
            return True
        if not facts.functions or not may_run_concurrently(summary):
            return False
        functions = [f.qualname for f in facts.functions]
        files = any(word in _FILE_WORDS for word in found)
        memory = facts.checks and "if " in found
        if memory and summary.has_roots() and reached(summary, functions, memory=True):
            return True
        if not files:
            return False
        if summary.has_roots() and reached(summary, functions, memory=False):
            return True
        application, _, script = summary.fact(("evidence",))  # files: any function of an application
        return application is not None and script is None

    def wants(self, function: cst.FunctionDef, qualname: str) -> bool:
        if function.name.value in CONSTRUCTION:
            return False
        reach = self.context.reach(qualname)
        return reach is not None or self._files_shared_for(qualname, None)

    def check_function(self, scope: Scope) -> None:
        if scope.name in CONSTRUCTION or scope.caller_holds_lock():
            return
        reach = self.context.reach(scope.qualname)
        memory = reach is not None and reach.memory
        files = self._files_shared(scope, reach)
        if not memory and not files:
            return
        reported: set[int] = set()
        for act in self._acts(scope, memory, files, reach.repeated if reach else False,
                              reach.self_shared if reach else False):
            if id(act.act) in reported or scope.lock_held(act.act) is not None:
                continue
            reported.add(id(act.act))
            self._report(scope, act, reach.via if reach is not None else self.context.evidence().application or "")

    def _files_shared(self, scope: Scope, reach) -> bool:
        return self._files_shared_for(scope.qualname, reach)

    def _files_shared_for(self, qualname: str, reach) -> bool:
        if reach is not None:
            return True
        relative = self.context.settings.relative_path(self.context.path) if self.context.path is not None else None
        if self.context.single_writer(qualname) is not None or _test_code(self.context.path, relative, qualname):
            return False
        return self.context.evidence().application is not None

    def _acts(self, scope: Scope, memory: bool, files: bool, repeated: bool, self_shared: bool) -> Iterator[_Act]:
        for node in scope.nodes:
            if not isinstance(node, cst.If):
                continue
            if memory:
                yield from self._memory_acts(node, scope, repeated, self_shared)
            if files:
                yield from self._file_acts(node, scope)
        if files:
            yield from self._file_rewrites(scope)

    # -- memory ---------------------------------------------------------------------------------
    def _memory_acts(self, check: cst.If, scope: Scope, repeated: bool, self_shared: bool) -> Iterator[_Act]:
        if not _may_check_state(check.test):
            return
        body = {id(node) for node in walk(check.body)}
        whole = body | {id(node) for node in walk(check.test)} | {id(check)}
        exits = not block_exits(body_statements(check)) & Exit.FALLTHROUGH
        for statement, target in scope.writes():
            if not isinstance(statement, (cst.Assign, cst.AugAssign)):
                continue
            inside = id(statement) in body
            after = exits and id(statement) not in whole and scope.index(statement) > scope.index(check)
            if not inside and not after:
                continue
            state = scope.state_of(target)
            if state is None or not self._state_shared(state, scope, repeated, self_shared):
                continue
            container, key = subscript_parts(target)
            # `if k not in d: d[k] = v` inserts in the body; `if k in d: return` then `d[k] = v` after.
            if container is not None and _tests_membership(check.test, container, key, absent=inside):
                yield _Act(check, statement, f"`{key} in {container}` is checked, then `{code(target)}` is set",
                           "memory", state, lock_fix(check, statement_of(scope, statement), scope, state))
            elif inside and container is None and isinstance(statement, cst.Assign) and _tests_unset(check.test, target):
                if _rechecks_under_lock(check, target, scope):
                    continue
                yield _Act(check, statement, f"`{code(target)}` is checked for being unset, then set (lazy initialisation)",
                           "memory", state, lock_fix(check, statement_of(scope, statement), scope, state))

    def _state_shared(self, state: State, scope: Scope, repeated: bool, self_shared: bool) -> bool:
        if state.kind == "instance":
            return self_shared
        if repeated:
            return True
        return state.kind == "global" and bool(self.context.writers_of_global(state.root) - {scope.qualname})

    # -- files ----------------------------------------------------------------------------------
    def _file_acts(self, check: cst.If, scope: Scope) -> Iterator[_Act]:
        tested = self._tested_path(check.test)
        if tested is None:
            return
        path, negated = tested
        # Inside `if not exists(p)` the file is taken to be absent (create it); after such a
        # block that exits, present (remove it) — and the other way round without `not`.
        regions = [(walk(check.body), negated), (self._after(check, scope), not negated)]
        for nodes, creating in regions:
            for node in nodes:
                if not isinstance(node, cst.Call):
                    continue
                act = self._file_act(node, path, creating=creating)
                if act is not None and not _tolerates_race(node, scope):
                    what, fix = act
                    checked = f"`{code(check.test)}` is checked, then " + what
                    yield _Act(check, statement_of(scope, node), checked, "file", None, fix)
                    return

    @staticmethod
    def _after(check: cst.If, scope: Scope) -> Iterator[cst.CSTNode]:
        """What runs after ``check`` only when its test failed: the rest of the block, if the
        `if` body always leaves it (`if exists(p): return`)."""
        if block_exits(body_statements(check)) & Exit.FALLTHROUGH:
            return
        block = scope.block_of(check)
        for statement in block[block.index(check) + 1 :]:
            yield from walk(statement)

    def _tested_path(self, test: cst.BaseExpression) -> tuple[str, bool] | None:
        """(path as written, negated) for `[not] os.path.exists(p)` / `[not] p.exists()`."""
        negated = False
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            negated, test = True, test.expression
        if not isinstance(test, cst.Call):
            return None
        called = self.context.qualify_call(test) or ""
        if called in _EXISTS and test.args:
            return code(test.args[0].value), negated
        if method_name(test) in _PATH_EXISTS and not test.args and receiver(test) is not None:
            return code(receiver(test)), negated
        return None

    def _file_act(self, call: cst.Call, path: str, creating: bool) -> tuple[str, FixRequest | None] | None:
        called = self.context.qualify_call(call) or ""
        method = method_name(call) or ""
        first = code(call.args[0].value) if call.args else None
        on_path = receiver(call) is not None and code(receiver(call)) == path
        if creating:
            if called in _CREATE and first == path and not _true_keyword(call, "exist_ok"):
                return f"`{called}({path})` creates it", FixRequest("exist-ok", "Use exist_ok=True", call, {"keyword": "exist_ok"})
            if method == "mkdir" and on_path and not _true_keyword(call, "exist_ok"):
                return f"`{path}.mkdir()` creates it", FixRequest("exist-ok", "Use exist_ok=True", call, {"keyword": "exist_ok"})
            if called == "builtins.open" and first == path and _writes(call):
                return f"`open({path}, ...)` creates it", None
            if method in {"write_text", "write_bytes", "touch"} and on_path:
                return f"`{path}.{method}()` creates it", None
            return None
        if called in _DELETE and first == path:
            return f"`{called}({path})` removes it", FixRequest("missing-ok", "Ignore a file already removed", call, {})
        if method == "unlink" and on_path and not _true_keyword(call, "missing_ok"):
            return f"`{path}.unlink()` removes it", FixRequest("missing-ok", "Use missing_ok=True", call, {"keyword": "missing_ok"})
        if method == "rmdir" and on_path:
            return f"`{path}.rmdir()` removes it", None
        return None

    def _file_rewrites(self, scope: Scope) -> Iterator[_Act]:
        """A file read (json.load & co.) and later written back to the same path."""
        read_paths: dict[str, cst.CSTNode] = {}
        opened: dict[str, str] = {}  # handle name -> path, for `with open(p) as fh: json.load(fh)`
        for node in scope.nodes:
            if isinstance(node, cst.WithItem) and isinstance(node.item, cst.Call) and node.asname is not None:
                handle = dotted_name(node.asname.name)
                called = self.context.qualify_call(node.item) or ""
                if handle and node.item.args and (called == "builtins.open" or method_name(node.item) == "open"):
                    path = code(node.item.args[0].value) if called == "builtins.open" else code(receiver(node.item))
                    opened[handle] = path
            if not isinstance(node, cst.Call):
                continue
            called = self.context.qualify_call(node) or ""
            argument = node.args[0].value if node.args else None
            if called in _READERS and argument is not None:
                path = opened.get(dotted_name(argument) or "") or _read_text_path(argument)
                if path is not None:
                    read_paths.setdefault(path, node)
            elif method_name(node) == "read_text" and receiver(node) is not None:
                read_paths.setdefault(code(receiver(node)), node)
            written = self._written_path(node, called, opened)
            if written is not None and written in read_paths:
                yield _Act(read_paths[written], statement_of(scope, node),
                           f"`{written}` is read, changed and written back", "file", None,
                           lock_fix(statement_of(scope, read_paths[written]), statement_of(scope, node), scope, None,
                                    title="Guard the read-modify-write with a lock"))
                return

    def _written_path(self, call: cst.Call, called: str, opened: dict[str, str]) -> str | None:
        if called in _WRITERS and len(call.args) > 1:
            return opened.get(dotted_name(call.args[1].value) or "")
        if method_name(call) in {"write_text", "write_bytes"} and receiver(call) is not None:
            return code(receiver(call))
        if called in {"os.replace", "os.rename", "shutil.move"} and len(call.args) > 1:
            return code(call.args[1].value)
        return None

    # -- report ---------------------------------------------------------------------------------
    def _report(self, scope: Scope, act: _Act, via: str) -> None:
        shared = (
            f"{act.state.shown()} is shared by the threads that run `{scope.name}`" if act.state is not None
            else "files are shared by every thread and process of the application"
        )
        fixes = [act.fix] if act.fix is not None else []
        if act.kind == "file" and act.fix is not None and act.fix.kind != "lock-guard":
            fixes.append(lock_fix(statement_of(scope, act.check), statement_of(scope, act.check), scope, None))
        self.report(
            act.act,
            f"{act.what}, and nothing makes the check and the act one step: another "
            f"{'thread' if act.kind == 'memory' else 'thread or process'} can act in between",
            checked=[shared, "no lock is held across the check and the act, and no atomic primitive is used", via],
            unverifiable=[
                "whether another thread, process or host touches the same "
                + ("state" if act.kind == "memory" else "file") + " at the same time",
                "whether doing it twice is harmless here (then the race only costs duplicate work)",
            ],
            related=[(act.check, "checked here")],
            fixes=fixes,
        )


_RACE_ERRORS = ("FileNotFoundError", "FileExistsError", "OSError", "IsADirectoryError")


def _tolerates_race(call: cst.Call, scope: Scope) -> bool:
    """The act is ready for the other worker: inside `suppress(FileNotFoundError)` or a `try`
    that handles the error the race raises."""
    for ancestor in scope.context.ancestors(call):
        if ancestor is scope.function:
            return False
        if isinstance(ancestor, cst.With) and any(
            isinstance(i.item, cst.Call) and (dotted_name(i.item.func) or "").endswith("suppress")
            and any((dotted_name(a.value) or "").endswith(_RACE_ERRORS) for a in i.item.args)
            for i in ancestor.items
        ):
            return True
        if isinstance(ancestor, cst.Try) and any(
            h.type is not None and any((dotted_name(n) or "").endswith(_RACE_ERRORS) for n in walk(h.type)
                                       if isinstance(n, (cst.Name, cst.Attribute)))
            for h in ancestor.handlers
        ):
            return True
    return False


def _may_check_state(test: cst.BaseExpression) -> bool:
    """A membership, None or truth test: what a check-then-act checks."""
    for node in walk(test):
        if isinstance(node, cst.Comparison) and any(
            isinstance(c.operator, (cst.In, cst.NotIn, cst.Is, cst.Equal)) for c in node.comparisons
        ):
            return True
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            return True
        if isinstance(node, cst.Call) and method_name(node) == "get":
            return True
    return False


def _tests_membership(test: cst.BaseExpression, container: str, key: str | None, absent: bool) -> bool:
    """The test checks ``key in container`` (``absent``: that it is missing, `not in` / `get(k) is None`)."""
    wanted = cst.NotIn if absent else cst.In
    for node in walk(test):
        if isinstance(node, cst.Comparison) and code(node.left) == key:
            for comparison in node.comparisons:
                if isinstance(comparison.operator, wanted) and dotted_name(comparison.comparator) == container:
                    return True
        if isinstance(node, cst.Call) and method_name(node) == "get" and dotted_name(receiver(node)) == container:
            if node.args and code(node.args[0].value) == key:
                return True
    return False


def _tests_unset(test: cst.BaseExpression, target: cst.BaseExpression) -> bool:
    """`x is None`, `not x`, `x == None` on the target itself."""
    wanted = dotted_name(target)
    if wanted is None:
        return False
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return dotted_name(test.expression) == wanted
    if isinstance(test, cst.Comparison) and dotted_name(test.left) == wanted and len(test.comparisons) == 1:
        comparison = test.comparisons[0]
        return isinstance(comparison.operator, (cst.Is, cst.Equal)) and dotted_name(comparison.comparator) == "None"
    return False


def _rechecks_under_lock(check: cst.If, target: cst.BaseExpression, scope: Scope) -> bool:
    """Double-checked locking: inside the `if`, a lock is taken and the test repeated."""
    for node in walk(check.body):
        if isinstance(node, cst.If) and node is not check and _tests_unset(node.test, target):
            if scope.lock_held(node) is not None:
                return True
    return False


def _true_keyword(call: cst.Call, name: str) -> bool:
    found = keyword(call, name)
    return found is not None and not (isinstance(found.value, cst.Name) and found.value.value == "False")


def _writes(call: cst.Call) -> bool:
    mode_arg = keyword(call, "mode") or (call.args[1] if len(call.args) > 1 and call.args[1].keyword is None else None)
    mode = string_value(mode_arg.value) if mode_arg is not None else "r"
    return mode is not None and any(flag in mode for flag in "wa") and "x" not in mode


def _read_text_path(argument: cst.BaseExpression) -> str | None:
    """`json.loads(p.read_text())` -> "p"."""
    if isinstance(argument, cst.Call) and method_name(argument) in {"read_text", "read_bytes", "read"}:
        target = receiver(argument)
        return code(target) if target is not None else None
    return None
