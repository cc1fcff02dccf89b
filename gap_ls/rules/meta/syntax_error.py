"""GAP000 syntax-error: the file cannot be parsed, so nothing in it is analysed."""

from __future__ import annotations

from gap_ls.core.model import Family, Severity
from gap_ls.core.rule import Rule


class UnparsableFile(Rule):
    """
    ## What it does
    Reports a file that gap-ls cannot parse: a syntax error, bytes that are not
    valid in the file's declared encoding (UTF-8 unless a coding comment says
    otherwise), or nesting too deep to analyse. There is one finding per file,
    at the first error.

    ## Why is this bad?
    Every other rule needs a parse tree. While the file does not parse, gap-ls
    cannot tell you about swallowed errors, races or retried side effects in it,
    and a clean result would be a false reassurance. In the editor, half-typed
    code is normal: the server keeps the last good findings of the parts that
    still parse.

    ## What gap-ls cannot verify
    - Anything in this file until it parses.
    - Syntax newer than the Python running gap-ls (gap-ls parses with the
      grammar of its own interpreter).

    ## Example
    ```python
    def charge(order)
        return gateway.charge(order.total)
    ```

    ## Use instead
    ```python
    def charge(order):
        return gateway.charge(order.total)
    ```

    ## Options
    Always reported unless `GAP000` is listed in `ignore`.
    """

    code = "GAP000"
    name = "syntax-error"
    family = Family.META
    severity = Severity.ERROR
    title = "File does not parse"
    meta = True
