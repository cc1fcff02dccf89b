"""GAP303 unsafe-http-retry-policy."""

from __future__ import annotations

import libcst as cst

from gap_ls.core.rule import FixRequest
from gap_ls.core.summary import ModuleSummary, UnitFacts
from gap_ls.rules.idempotency.shared import IdempotencyRule, NodeIndex, Verdict


class UnsafeHttpRetryPolicy(IdempotencyRule):
    """
    ## What it does
    Flags a urllib3 `Retry(...)` (also imported through `requests.adapters`)
    that re-sends POST or PATCH — `allowed_methods=None`/`False`, an
    `allowed_methods` set that includes them (also
    `Retry.DEFAULT_ALLOWED_METHODS | {"POST"}`), or the old `method_whitelist`
    — with read or status retries left on, in a module that sends POST/PATCH
    requests without an `Idempotency-Key` header.

    Not flagged: the default `allowed_methods` (urllib3 does not retry POST),
    a policy with `read=0, status=0` (connect errors only: the request never
    reached the server), `total=0`, and modules whose POSTs all carry a key.

    ## Why is this bad?
    urllib3 leaves POST out of its retries on purpose: a read timeout or a 502
    may come after the server acted. Widening the policy makes every POST
    through this session a retried side effect, invisibly, far from the calls.

    ## What gap-ls cannot verify
    - Which session this adapter is mounted on, and which requests go through it.
    - Whether the server deduplicates the requests by some field of their body.

    ## Example
    ```python
    retries = Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503], allowed_methods=None)
    session.mount("https://", HTTPAdapter(max_retries=retries))
    session.post(f"{API}/orders", json=order)
    ```

    ## Use instead
    ```python
    retries = Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503])  # idempotent methods only
    ```
    and send an `Idempotency-Key` header where the API takes one.

    ## Fix
    *Limit HTTP retries to safe methods*: sets `allowed_methods` to urllib3's
    idempotent methods (`Retry.DEFAULT_ALLOWED_METHODS`), with a `TODO(gap-ls)`.
    """

    code = "GAP303"
    name = "unsafe-http-retry-policy"
    title = "HTTP retry policy re-sends POST/PATCH"
    triggers = ("Retry",)

    @classmethod
    def relevant(cls, facts: UnitFacts | None, summary: ModuleSummary, found: tuple[str, ...] = ()) -> bool:
        return True

    def report_verdict(self, verdict: Verdict, node: cst.CSTNode, index: NodeIndex) -> None:
        self.report(
            node,
            f"HTTP retry policy re-sends non-idempotent requests: {verdict.detail}, and this module sends "
            "POST/PATCH requests without an Idempotency-Key header",
            checked=(
                verdict.detail,
                "read or status retries are on (a timeout or 5xx after the server acted is retried)",
                "the module sends POST or PATCH without an `Idempotency-Key` header",
            ),
            unverifiable=(
                "which session this policy is mounted on, and whether those POSTs go through it",
                "whether the server deduplicates these requests by a field of their body",
            ),
            fixes=(FixRequest("safe-methods", "Limit HTTP retries to idempotent methods", node, {}),),
        )
