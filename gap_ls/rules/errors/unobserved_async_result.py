"""GAP104 unobserved-async-result."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.model import Family
from gap_ls.core.nodes import call_name, dotted_name, keyword, method_name, receiver, walk
from gap_ls.core.rule import FixRequest, Rule, UnitContext
from gap_ls.core.summary import FunctionInfo, ModuleSummary, UnitFacts

TASK_FACTORIES = frozenset({"asyncio.create_task", "asyncio.ensure_future", "asyncio.tasks.create_task"})
THREADS = frozenset({"threading.Thread", "threading.Timer"})
GATHER = frozenset({"asyncio.gather"})
TASK_GROUP_FACTORIES = re.compile(r"(TaskGroup|create_task_group|open_nursery|Nursery)$")
_EXECUTOR_NAME = re.compile(r"executor|pool|workers", re.IGNORECASE)
_TASK_GROUP_NAME = re.compile(r"^(tg|task_group|taskgroup|nursery|group)$", re.IGNORECASE)
# Calls that consume a task's or future's outcome when given it.
OBSERVING_CALLS = frozenset({"gather", "wait", "as_completed", "wait_for", "shield", "run_until_complete", "result"})
# Calls that take a task without observing it.
NEUTRAL_CALLS = frozenset(
    {"len", "print", "repr", "str", "id", "isinstance", "hash", "debug", "info", "warning", "error", "exception"}
)
# Places where mentioning a task neither observes it nor hands it on.
NEUTRAL_PARENTS = (
    cst.Comparison,
    cst.ComparisonTarget,
    cst.If,
    cst.Subscript,
    cst.SubscriptElement,
    cst.Index,
    cst.FormattedStringExpression,
    cst.BooleanOperation,
    cst.UnaryOperation,
    cst.Del,
)
CONTAINER_METHODS = frozenset({"add", "append", "appendleft", "put", "put_nowait", "insert", "extend", "setdefault"})


@dataclass(frozen=True)
class Candidate:
    call: cst.Call
    kind: str  # task | future | executor-map | thread | gather
    work_node: cst.CSTNode | None = None  # the expression naming the function that runs

    @property
    def work(self) -> str | None:
        """Dotted name of the function the task/future/thread runs; None for anything else
        (a lambda, a factory call that returns the function)."""
        return dotted_name(self.work_node) if self.work_node is not None else None


class UnobservedAsyncResult(Rule):
    """
    ## What it does
    Flags background work whose exception nobody can ever see:

    - a task from `asyncio.create_task` / `loop.create_task` / `ensure_future`
      that is never awaited, never passed to `gather`/`wait`, has no
      done-callback that reads `exception()`/`result()`, or is only kept in a
      set with `add_done_callback(set.discard)` (the "keep a reference" idiom,
      which keeps the task alive but still drops its error);
    - a future from `executor.submit(...)` or `loop.run_in_executor(...)` that
      is discarded, and `executor.map(...)` whose results are never iterated;
    - a `threading.Thread`/`Timer` whose target (found in this module) has no
      error handling of its own;
    - `asyncio.gather(..., return_exceptions=True)` whose results are never
      checked for exceptions.

    ## Why is this bad?
    The work fails and the program carries on as if it had succeeded. asyncio
    only logs "Task exception was never retrieved" when the task is garbage
    collected — possibly never, possibly minutes later. A future's exception
    stays inside the future; a thread's goes to `threading.excepthook` and the
    thread is gone. `return_exceptions=True` turns every failure into a value in
    a list nobody reads.

    ## What gap-ls cannot verify
    - Whether something outside this function (a registry of tasks, a shutdown
      hook, another module) awaits the task or reads the future.
    - Whether the background work handles its own errors when it is defined in
      another module.

    ## Example
    ```python
    async def place_order(order):
        await orders.save(order)
        asyncio.create_task(send_confirmation(order))
    ```

    ## Use instead
    ```python
    background: set[asyncio.Task] = set()

    def _report(task: asyncio.Task) -> None:
        background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    async def place_order(order):
        await orders.save(order)
        task = asyncio.create_task(send_confirmation(order))
        background.add(task)
        task.add_done_callback(_report)
    ```
    or run it in an `asyncio.TaskGroup`; for executors, keep the futures and call
    `result()` (e.g. over `concurrent.futures.as_completed`).

    ## Fix
    *Keep the task and surface its exception*: store it and add a done-callback
    that logs `exception()`; for executor futures, collect them and check
    `result()`.
    """

    code = "GAP104"
    name = "unobserved-async-result"
    family = Family.SWALLOWED_ERROR
    title = "Background task, future or thread whose exception nobody observes"
    triggers = ("create_task", "ensure_future", "submit", "run_in_executor", ".map(", "Thread", "Timer", "return_exceptions")

    def __init__(self, context: UnitContext) -> None:
        super().__init__(context)
        self.candidates: list[Candidate] = []

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        """"Thread" and "Timer" occur in many units that start no thread (`ThreadPoolExecutor`,
        `threading.Thread` subclasses, imports); a thread is a candidate only with a target,
        which the unit's facts record."""
        if facts is None or not found or facts.thread_calls:
            return True
        return not all(_names_thread_class(word, summary) for word in found)

    def visit_Call(self, node: cst.Call) -> None:
        candidate = self._candidate(node)
        if candidate is not None:
            self.candidates.append(candidate)

    def finish(self) -> None:
        for candidate in self.candidates:
            if candidate.kind == "thread":
                self._check_thread(candidate)
            elif candidate.kind == "gather":
                self._check_gather(candidate)
            elif candidate.kind == "executor-map":
                if isinstance(self.context.parent(candidate.call), cst.Expr):
                    self._report(candidate)  # iterating the results is what raises their errors
            elif not self._observed_value(candidate.call) and not self._work_handles_errors(candidate):
                self._report(candidate)

    # -- what is a candidate --------------------------------------------------------------

    def _candidate(self, call: cst.Call) -> Candidate | None:
        qualified = self.context.qualify_call(call) or ""
        method = method_name(call)
        target = receiver(call)
        if qualified in TASK_FACTORIES:
            return Candidate(call, "task", _coroutine_call(call.args[0].value) if call.args else None)
        if qualified in THREADS:
            return Candidate(call, "thread", self._thread_target(call, qualified))
        if qualified in GATHER:
            flag = keyword(call, "return_exceptions")
            if flag is not None and isinstance(flag.value, cst.Name) and flag.value.value == "True":
                return Candidate(call, "gather")
            return None
        if target is None:
            return None
        if method == "create_task" and not self._is_task_group(target, call):
            return Candidate(call, "task", _coroutine_call(call.args[0].value) if call.args else None)
        if method == "run_in_executor":
            return Candidate(call, "future", call.args[1].value if len(call.args) > 1 else None)
        if method in {"submit", "map"} and self._is_executor(target):
            return Candidate(call, "future" if method == "submit" else "executor-map", call.args[0].value if call.args else None)
        return None

    def _thread_target(self, call: cst.Call, qualified: str) -> cst.CSTNode | None:
        target = keyword(call, "target") or keyword(call, "function")
        if target is None and qualified == "threading.Timer" and len(call.args) > 1:
            target = call.args[1]
        return target.value if target is not None else None

    def _is_executor(self, target: cst.BaseExpression) -> bool:
        name = dotted_name(target)
        if name is None:
            called = self.context.qualify_call(target) or ""
            return called.endswith(("ThreadPoolExecutor", "ProcessPoolExecutor"))
        if name in self.context.summary.executors:
            return True
        return bool(_EXECUTOR_NAME.search(name.rsplit(".", 1)[-1]))

    def _is_task_group(self, target: cst.BaseExpression, call: cst.Call) -> bool:
        name = dotted_name(target)
        if name is None:
            return False
        if _TASK_GROUP_NAME.match(name.rsplit(".", 1)[-1]):
            return True
        for ancestor in self.context.ancestors(call):
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    bound = dotted_name(item.asname.name) if item.asname is not None else None
                    made = call_name(item.item) or ""
                    if bound == name and TASK_GROUP_FACTORIES.search(made):
                        return True
        return False

    # -- is the value observed -------------------------------------------------------------

    def _observed_value(self, node: cst.CSTNode) -> bool:
        """Whether the value ``node`` evaluates to reaches something that reads its outcome."""
        parent = self.context.parent(node)
        if isinstance(parent, (cst.Await, cst.Return, cst.Yield)):
            return True
        if isinstance(parent, cst.Expr):
            return False
        if isinstance(parent, cst.Arg):
            return self._observed_argument(parent)
        if isinstance(parent, (cst.ListComp, cst.SetComp, cst.GeneratorExp)) and parent.elt is node:
            return self._observed_value(parent)
        if isinstance(parent, (cst.Element, cst.StarredElement)):
            container = self.context.parent(parent)
            return container is not None and self._observed_value(container)
        if isinstance(parent, (cst.Assign, cst.AnnAssign)):
            return self._observed_assignment(parent)
        if isinstance(parent, cst.Attribute):
            return self._observed_method(parent)
        return True  # used in some other expression: assume it is handled

    def _observed_argument(self, arg: cst.Arg) -> bool:
        call = self.context.parent(arg)
        if not isinstance(call, cst.Call):
            return True
        method = method_name(call) or ""
        if method in OBSERVING_CALLS:
            return True
        if method in CONTAINER_METHODS and (container := receiver(call)) is not None:
            return self._observed_container(container)
        if method == "add_done_callback":
            return True  # the value is the callback; not our concern
        return method not in NEUTRAL_CALLS  # passed on: someone else may observe it

    def _observed_method(self, attribute: cst.Attribute) -> bool:
        call = self.context.parent(attribute)
        method = attribute.attr.value
        if method in {"result", "exception"}:
            return True
        if method == "add_done_callback" and isinstance(call, cst.Call) and call.args:
            return self._callback_observes(call.args[0].value)
        return False

    def _observed_assignment(self, assignment: cst.CSTNode | None) -> bool:
        if isinstance(assignment, cst.Assign):
            targets = [t.target for t in assignment.targets]
        elif isinstance(assignment, cst.AnnAssign):
            targets = [assignment.target]
        else:
            return True
        for target in targets:
            if isinstance(target, cst.Name):
                if self._observed_name(target.value, assignment, set()):
                    return True
            elif isinstance(target, cst.Attribute):
                if self._observed_container(target) or self._observed_attribute(target, assignment):
                    return True
            elif isinstance(target, cst.Subscript):
                if self._observed_container(target.value):
                    return True
            else:
                return True
        return False

    def _observed_attribute(self, target: cst.Attribute, assignment: cst.CSTNode) -> bool:
        """`self._task = create_task(...)` then `self._task.add_done_callback(report)` (or awaited,
        or `.result()`) in the same function."""
        name = dotted_name(target)
        function = self.context.enclosing_function(assignment)
        if name is None or function is None:
            return False
        for node in walk(function.body):
            if isinstance(node, cst.Await) and dotted_name(node.expression) == name:
                return True
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and dotted_name(node.func.value) == name:
                method = node.func.attr.value
                if method in {"result", "exception"}:
                    return True
                if method == "add_done_callback" and node.args and self._callback_observes(node.args[0].value):
                    return True
        return False

    def _observed_container(self, container: cst.BaseExpression) -> bool:
        name = dotted_name(container)
        if name is None:
            return True
        summary = self.context.summary
        if "." not in name:
            function = self.context.enclosing_function(container)
            if function is not None and name not in summary.globals:
                return self._observed_name(name, container, set())
        return name in summary.observed or name.rsplit(".", 1)[-1] in summary.observed

    def _observed_name(self, name: str, binding: cst.CSTNode, seen: set[str]) -> bool:
        if name in seen:
            return False
        seen.add(name)
        function = self.context.enclosing_function(binding)
        scope = function.body if function is not None else None
        if scope is None:
            return name in self.context.summary.observed
        for node in walk(scope, enter_definitions=True):
            if not (isinstance(node, cst.Name) and node.value == name) or self._is_binding(node):
                continue
            parent = self.context.parent(node)
            if isinstance(parent, cst.Attribute) and parent.value is node:
                if self._observed_method(parent):
                    return True
                continue
            if isinstance(parent, cst.For) and parent.iter is node:
                if isinstance(parent.target, cst.Name) and self._observed_name(parent.target.value, parent.target, seen):
                    return True
                continue
            if isinstance(parent, NEUTRAL_PARENTS):
                continue
            if self._observed_value(node):
                return True
        return False

    def _is_binding(self, name: cst.Name) -> bool:
        parent = self.context.parent(name)
        if isinstance(parent, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.NamedExpr)):
            return parent.target is name
        return isinstance(parent, (cst.AsName, cst.Param, cst.NameItem))

    def _callback_observes(self, callback: cst.BaseExpression) -> bool:
        if isinstance(callback, cst.Lambda):
            return any(
                isinstance(n, cst.Call) and method_name(n) in {"result", "exception"} for n in walk(callback, enter_definitions=True)
            )
        if isinstance(callback, cst.Call) and (call_name(callback) or "").endswith("partial") and callback.args:
            return self._callback_observes(callback.args[0].value)
        name = dotted_name(callback)
        if name is None:
            return True
        if name.rsplit(".", 1)[-1] in {"discard", "remove", "pop"}:
            return False
        info = self._resolve(name, callback)
        return info.reads_outcome if info is not None else True

    # -- the work itself ---------------------------------------------------------------------

    def _resolve(self, name: str, node: cst.CSTNode):
        function = self.context.enclosing_function(node)
        scope = self.context.qualname(function) if function is not None else None
        class_name = self.context.class_name(function) if function is not None else None
        if class_name is None and function is not None:
            for ancestor in self.context.ancestors(function):
                if isinstance(ancestor, cst.FunctionDef):
                    class_name = self.context.class_name(ancestor)
        return self.context.resolve_function(name, scope, class_name)

    def _work(self, candidate: Candidate) -> tuple[FunctionInfo | None, str | None]:
        """What runs, as far as can be known: its summary, and how it was found."""
        if candidate.work is None:
            return None, None
        info = self._resolve(candidate.work, candidate.call)
        if info is not None:
            return info, f"`{candidate.work}` is defined in this module"
        root = candidate.work.split(".", 1)[0]
        if root in self.context.summary.imports and candidate.work_node is not None:
            external = self.context.resolve_external(candidate.work_node)
            if external is not None:
                return external.info, f"resolved with jedi: {external.describe()}"
        return None, None

    def _work_handles_errors(self, candidate: Candidate) -> bool:
        info, _ = self._work(candidate)
        return info is not None and info.handles_errors

    def _check_thread(self, candidate: Candidate) -> None:
        info, how = self._work(candidate)
        if info is None or info.handles_errors:
            return  # defined where nothing can be read, or guarded by its own try/except
        self._report(candidate, f"`{candidate.work}` has no try/except of its own ({how})")

    def _check_gather(self, candidate: Candidate) -> None:
        awaited = self.context.parent(candidate.call)
        value: cst.CSTNode = awaited if isinstance(awaited, cst.Await) else candidate.call
        parent = self.context.parent(value)
        if isinstance(parent, cst.Expr):
            self._report(candidate)
            return
        function = self.context.enclosing_function(candidate.call)
        if function is None or _checks_for_exceptions(function):
            return
        if isinstance(parent, (cst.Assign, cst.AnnAssign)) and not self._results_escape(parent):
            self._report(candidate)

    def _results_escape(self, assignment: cst.Assign | cst.AnnAssign) -> bool:
        targets = [t.target for t in assignment.targets] if isinstance(assignment, cst.Assign) else [assignment.target]
        names = {t.value for t in targets if isinstance(t, cst.Name)}
        function = self.context.enclosing_function(assignment)
        if function is None or not names:
            return True
        for node in walk(function.body):
            if isinstance(node, (cst.Return, cst.Yield)) and node.value is not None:
                if names & {n.value for n in walk(node.value) if isinstance(n, cst.Name)}:
                    return True
        return False

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, candidate: Candidate, work_fact: str | None = None) -> None:
        what = {
            "task": "task",
            "future": "future",
            "executor-map": "`executor.map(...)` result",
            "thread": "thread",
            "gather": "`gather(..., return_exceptions=True)` result",
        }[candidate.kind]
        consequence = {
            "task": "is never awaited and no done-callback reads its exception: if it fails, nobody hears",
            "future": "is dropped: its exception stays inside it and nobody hears of the failure",
            "executor-map": "is never iterated: exceptions (and results) are never retrieved",
            "thread": "runs a target with no error handling: an exception kills the thread and the program carries on",
            "gather": "is never checked: `return_exceptions=True` turns every failure into a list item nobody reads",
        }[candidate.kind]
        checked = [
            {
                "task": "not awaited, not passed to gather/wait, no done-callback that reads exception()/result() in this function",
                "future": "not awaited, no `.result()`/`.exception()`, not passed to wait/as_completed",
                "executor-map": "the iterator returned by `map` is discarded",
                "thread": "the thread's exception only reaches threading.excepthook",
                "gather": "no `isinstance(result, Exception)` check and the results are not returned",
            }[candidate.kind]
        ]
        if work_fact is not None:
            checked.append(work_fact)
        elif candidate.work is not None:
            info, how = self._work(candidate)
            checked.append(
                f"`{candidate.work}` has no try/except of its own ({how})"
                if info is not None
                else f"`{candidate.work}` is defined elsewhere; its own error handling is not visible"
            )
        self.report(
            candidate.call,
            f"{what.capitalize() if what[0] != '`' else what} {consequence}",
            header=False,
            checked=checked,
            unverifiable=(
                "whether something outside this function (a task registry, a shutdown hook) observes it",
                "whether the work handles its own errors when it is defined in another module",
            ),
            fixes=(FixRequest("observe-result", "Keep the task and surface its exception", candidate.call, {"kind": candidate.kind}),),
        )


def _coroutine_call(node: cst.BaseExpression) -> cst.CSTNode | None:
    """The function whose call makes the coroutine: `send` in `create_task(send(order))`."""
    return node.func if isinstance(node, cst.Call) else None


def _checks_for_exceptions(function: cst.FunctionDef) -> bool:
    for node in walk(function.body, enter_definitions=True):
        if isinstance(node, cst.Call) and call_name(node) == "isinstance" and len(node.args) > 1:
            text = cst.Module(body=[]).code_for_node(node.args[1].value)
            if re.search(r"Exception|Error|BaseException", text):
                return True
    return False


def _names_thread_class(word: str, summary: ModuleSummary) -> bool:
    """``word`` is "Thread"/"Timer", or an import alias of a name holding one of them."""
    return word in _THREAD_WORDS or any(w in summary.imports.get(word, "") for w in _THREAD_WORDS)


_THREAD_WORDS = ("Thread", "Timer")
