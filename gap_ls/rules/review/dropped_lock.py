"""GAP291 dropped-lock."""

from __future__ import annotations

from gap_ls.core.model import Family
from gap_ls.core.rule import Rule


class DroppedLock(Rule):
    """
    ## What it does
    Compares a function with its base version and flags a guard that is gone
    while the function still changes state: a `with lock:` block, a
    `select_for_update()` / `with_for_update()` row lock, an `F()` atomic
    update or a version check (`filter(version=...)`).

    ## Why is this bad?
    Refactors drop locks because nothing fails without them: tests run one
    request at a time. The lost update appears only under real traffic, long
    after the change was merged.

    ## What gap-ls cannot verify
    - Whether this code still runs concurrently (worker model, deployment).
    - Whether a caller now takes the lock instead.

    ## Example
    ```python
    # base
    with self._lock:
        self._balance -= amount
    # now
    self._balance -= amount
    ```

    ## Use instead
    Keep the guard, or move it — and say where — if the caller now holds it.
    """

    code = "GAP291"
    name = "dropped-lock"
    family = Family.RACE
    title = "A lock, row lock or atomic update of the base version is gone"
    meta = True
    diff_only = True
