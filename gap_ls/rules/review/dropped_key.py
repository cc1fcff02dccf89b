"""GAP391 dropped-idempotency-key."""

from __future__ import annotations

from gap_ls.core.model import Family
from gap_ls.core.rule import Rule


class DroppedIdempotencyKey(Rule):
    """
    ## What it does
    Compares a function with its base version and flags an idempotency key
    (`idempotency_key=`, an `Idempotency-Key` header, `MessageDeduplicationId`,
    ...) removed from a side-effect call, or a retry (decorator or loop) added
    around a side effect that has no key.

    ## Why is this bad?
    The key is what makes a repeated request harmless. Without it a retry, a
    redelivery or a double click performs the payment, the POST or the insert
    twice — and a diff that "simplifies the call" shows nothing alarming.

    ## What gap-ls cannot verify
    - Whether the service deduplicates the request without the key.

    ## Example
    ```python
    # base
    stripe.Refund.create(charge=charge_id, idempotency_key=f"refund-{order.id}")
    # now
    stripe.Refund.create(charge=charge_id)
    ```

    ## Use instead
    Keep the key; when adding a retry, add a key that is made once, outside it.
    """

    code = "GAP391"
    name = "dropped-idempotency-key"
    family = Family.IDEMPOTENCY
    title = "An idempotency key was removed, or a retry added around a call without one"
    meta = True
    diff_only = True
