"""GAP191 dropped-reraise."""

from __future__ import annotations

from gap_ls.core.model import Family
from gap_ls.core.rule import Rule


class DroppedReraise(Rule):
    """
    ## What it does
    Compares a function with its base version (`gap-ls review`, or the file at
    git `HEAD` in the editor) and flags an exception handler that raised in
    the base and no longer does: it now returns, logs or carries on. Handlers
    are matched by position in the function (or by what they catch when
    handlers were added or removed).

    ## Why is this bad?
    The most common way a rewrite loses an error: the handler is "tidied up",
    the `raise` disappears, and the caller that relied on the exception now
    gets `None` or a default. Every test that never forces the failure keeps
    passing.

    ## What gap-ls cannot verify
    - Whether the callers now check for the failure some other way.
    - Whether the failure is still reported elsewhere (middleware, a wrapper).

    ## Example
    ```python
    # base
    except stripe.error.StripeError:
        log.exception("charge failed")
        raise
    # now
    except stripe.error.StripeError:
        log.exception("charge failed")
        return None
    ```

    ## Use instead
    Keep the `raise` (or raise a domain error `from` the original), or make
    the new contract explicit in the function's return type and its callers.
    """

    code = "GAP191"
    name = "dropped-reraise"
    family = Family.SWALLOWED_ERROR
    title = "A handler that re-raised in the base version no longer does"
    meta = True
    diff_only = True
