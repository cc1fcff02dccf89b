"""GAP001 unused-suppression: a `# gap: ignore[...]` or `# noqa: GAP...` that silences nothing."""

from __future__ import annotations

from gap_ls.core.model import Family, Severity
from gap_ls.core.rule import Rule


class UnusedSuppression(Rule):
    """
    ## What it does
    Reports a suppression comment whose rule code matches no finding on that
    line (or on the construct that starts there), a code that names no gap-ls
    rule, or a `# gap: ignore` without any code.

    ## Why is this bad?
    A stale suppression hides the next real finding on that line: the code
    changed, the gap went away, but the comment still switches the rule off.
    A code that names no rule is usually a typo that suppresses nothing.

    ## What gap-ls cannot verify
    - Whether the reason written after the code is still true.
    - Suppressions of rules that are disabled in the configuration are not
      checked (they cannot match anything).

    ## Example
    ```python
    total = price * quantity  # gap: ignore[GAP101] legacy handler
    ```

    ## Use instead
    Remove the comment, or move it to the line that is flagged:
    ```python
    except Exception:  # gap: ignore[GAP101] the CLI's top level reports and exits
    ```

    ## Options
    `# noqa: GAP101` is read as well (for familiarity) but gap-ls never writes
    it: ruff's unused-noqa fix deletes codes it does not know unless `GAP` is
    listed in ruff's `lint.external`.
    """

    code = "GAP001"
    name = "unused-suppression"
    family = Family.META
    severity = Severity.WARNING
    title = "Suppression comment silences nothing"
    meta = True
