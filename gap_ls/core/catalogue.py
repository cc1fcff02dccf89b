"""Every rule's code, name and family, as plain data.

Checking a configuration's selectors needs only these; importing the rule modules loads
libcst, which a `gap-ls check` served from its cache never needs. A test keeps this table
equal to the rule classes.
"""

# (code, name, family, "module:Class")
CATALOGUE: tuple[tuple[str, str, str, str], ...] = (
    ("GAP000", "syntax-error", "meta", "gap_ls.rules.meta.syntax_error:UnparsableFile"),
    ("GAP001", "unused-suppression", "meta", "gap_ls.rules.meta.unused_suppression:UnusedSuppression"),
    ("GAP101", "broad-handler-continues", "swallowed-error", "gap_ls.rules.errors.broad_handler_continues:BroadHandlerContinues"),
    ("GAP102", "logged-then-defaulted", "swallowed-error", "gap_ls.rules.errors.logged_then_defaulted:LoggedThenDefaulted"),
    ("GAP103", "broad-suppress", "swallowed-error", "gap_ls.rules.errors.broad_suppress:BroadSuppress"),
    ("GAP104", "unobserved-async-result", "swallowed-error", "gap_ls.rules.errors.unobserved_async_result:UnobservedAsyncResult"),
    ("GAP105", "retry-exhausted-silently", "swallowed-error", "gap_ls.rules.errors.retry_exhausted_silently:RetryExhaustedSilently"),
    ("GAP106", "operational-error-to-success", "swallowed-error", "gap_ls.rules.errors.operational_error_to_success:OperationalErrorToSuccess"),
    ("GAP107", "cancellation-swallowed", "swallowed-error", "gap_ls.rules.errors.cancellation_swallowed:CancellationSwallowed"),
    ("GAP191", "dropped-reraise", "swallowed-error", "gap_ls.rules.review.dropped_reraise:DroppedReraise"),
    ("GAP192", "broadened-handler", "swallowed-error", "gap_ls.rules.review.broadened_handler:BroadenedHandler"),
    ("GAP201", "unlocked-shared-update", "race", "gap_ls.rules.concurrency.unlocked_shared_update:UnlockedSharedUpdate"),
    ("GAP202", "inconsistent-locking", "race", "gap_ls.rules.concurrency.inconsistent_locking:InconsistentLocking"),
    ("GAP203", "check-then-act", "race", "gap_ls.rules.concurrency.check_then_act:CheckThenAct"),
    ("GAP204", "await-interleaved-update", "race", "gap_ls.rules.concurrency.await_interleaved_update:AwaitInterleavedUpdate"),
    ("GAP205", "orm-lost-update", "race", "gap_ls.rules.concurrency.orm_lost_update:OrmLostUpdate"),
    ("GAP206", "exists-then-create", "race", "gap_ls.rules.concurrency.exists_then_create:ExistsThenCreate"),
    ("GAP207", "lock-not-shared", "race", "gap_ls.rules.concurrency.lock_not_shared:LockNotShared"),
    ("GAP291", "dropped-lock", "race", "gap_ls.rules.review.dropped_lock:DroppedLock"),
    ("GAP301", "retried-side-effect-without-key", "idempotency", "gap_ls.rules.idempotency.retried_side_effect:RetriedSideEffectWithoutKey"),
    ("GAP302", "key-regenerated-per-attempt", "idempotency", "gap_ls.rules.idempotency.key_per_attempt:KeyRegeneratedPerAttempt"),
    ("GAP303", "unsafe-http-retry-policy", "idempotency", "gap_ls.rules.idempotency.unsafe_http_retry:UnsafeHttpRetryPolicy"),
    ("GAP304", "at-least-once-without-dedup", "idempotency", "gap_ls.rules.idempotency.at_least_once:AtLeastOnceWithoutDedup"),
    ("GAP305", "side-effect-before-retry-point", "idempotency", "gap_ls.rules.idempotency.effect_before_retry:SideEffectBeforeRetryPoint"),
    ("GAP391", "dropped-idempotency-key", "idempotency", "gap_ls.rules.review.dropped_key:DroppedIdempotencyKey"),
)
