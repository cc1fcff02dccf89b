"""Fixes: the scaffolding gap-ls can insert for a finding, built as libcst transforms.

``actions_for(finding)`` lists what can be offered (cheap, no parsing: the
rule recorded its fix hints); ``compute_edits(text, finding, kind)`` builds
the edit when one is chosen. Every fix keeps the user's code and formatting,
marks the decision left open with `TODO(gap-ls)`, compiles, and is a no-op
when applied a second time. "Suppress with a reason" is offered for every
rule, after the real fixes. Pure: no LSP types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.model import Finding, FixHint, TextEdit
from gap_ls.fixes.create import get_or_create, handle_duplicate, set_if_absent, use_incr
from gap_ls.fixes.edits import FixContext, FixNotApplicable, ModuleAdditions, UnitTree, fix_unit
from gap_ls.fixes.files import ignore_missing, set_flag
from gap_ls.fixes.keys import add_key, hoist_key, record_first, safe_methods
from gap_ls.fixes.lock import hoist_lock, lock_guard
from gap_ls.fixes.narrow import narrow
from gap_ls.fixes.observe import observe
from gap_ls.fixes.reraise import reraise
from gap_ls.fixes.retry import raise_after_retries
from gap_ls.fixes.rows import atomic_update, lock_row
from gap_ls.fixes.suppress import suppress

SUPPRESS = "suppress"


@dataclass(frozen=True)
class FixAction:
    code: str
    kind: str
    title: str
    preferred: bool


def actions_for(finding: Finding) -> list[FixAction]:
    actions = [
        FixAction(finding.code, hint.kind, hint.title, preferred=index == 0)
        for index, hint in enumerate(finding.fixes)
        if hint.kind in _TRANSFORMS
    ]
    if finding.code != "GAP000":
        actions.append(FixAction(finding.code, SUPPRESS, f"Suppress {finding.code} on this line (with a reason)", False))
    return actions


def compute_edits(text: str, finding: Finding, kind: str, context: FixContext | None = None) -> list[TextEdit]:
    """The edits for fix ``kind``; [] when already applied; FixNotApplicable when it cannot be built.

    ``context`` (the analysis's units and summary) spares parsing the whole file.
    """
    if kind == SUPPRESS:
        return suppress(text, finding)
    hint = next((h for h in finding.fixes if h.kind == kind), None)
    if hint is None or kind not in _TRANSFORMS:
        raise FixNotApplicable(f"{finding.code} offers no fix {kind!r}")
    transform = _TRANSFORMS[kind]
    try:
        return fix_unit(text, hint.target.start.line, lambda tree, additions: transform(tree, additions, hint), context)
    except FixNotApplicable:
        if _marked_here(text, hint.target.start.line):
            return []  # a fix already rewrote this line (its TODO says so): nothing more to do
        raise


def _marked_here(text: str, line: int) -> bool:
    lines = text.splitlines()
    return line < len(lines) and "TODO(gap-ls)" in lines[line]


Transform = Callable[[UnitTree, ModuleAdditions, FixHint], cst.Module]

_TRANSFORMS: dict[str, Transform] = {
    "reraise": lambda tree, additions, hint: reraise(tree, additions, hint.target, bool(hint.data.get("cancellation"))),
    "narrow": lambda tree, additions, hint: narrow(tree, additions, hint.target, list(hint.data.get("types", []))),
    "observe-result": lambda tree, additions, hint: observe(tree, additions, hint.target, str(hint.data.get("kind"))),
    "raise-after-retries": lambda tree, additions, hint: raise_after_retries(tree, additions, hint.target),
    "lock-guard": lock_guard,
    "hoist-lock": hoist_lock,
    "lock-row": lock_row,
    "atomic-update": atomic_update,
    "get-or-create": get_or_create,
    "handle-duplicate": handle_duplicate,
    "use-incr": use_incr,
    "set-if-absent": set_if_absent,
    "exist-ok": set_flag,
    "missing-ok": ignore_missing,
    "idempotency-key": add_key,
    "hoist-key": hoist_key,
    "safe-methods": safe_methods,
    "record-message-first": record_first,
}

__all__ = ["SUPPRESS", "FixAction", "FixContext", "FixNotApplicable", "actions_for", "compute_edits"]
