"""GAP192 broadened-handler."""

from __future__ import annotations

from gap_ls.core.model import Family
from gap_ls.core.rule import Rule


class BroadenedHandler(Rule):
    """
    ## What it does
    Compares a function with its base version and flags a handler that
    caught specific exceptions in the base and catches `Exception`,
    `BaseException` or everything (bare `except:`) now.

    ## Why is this bad?
    The narrow handler was written for the errors the `try` body was known
    to raise. The broad one also catches programming errors (`KeyError`,
    `TypeError`, `AttributeError`) and handles them the same way, usually by
    carrying on — a bug becomes a silent default.

    ## What gap-ls cannot verify
    - Which new exceptions the `try` body can raise, and whether this handler
      is right for them.

    ## Example
    ```python
    # base
    except (requests.Timeout, requests.ConnectionError):
    # now
    except Exception:
    ```

    ## Use instead
    Keep the narrow types, adding the new ones the body really raises.
    """

    code = "GAP192"
    name = "broadened-handler"
    family = Family.SWALLOWED_ERROR
    title = "A narrow handler became a broad one"
    meta = True
    diff_only = True
