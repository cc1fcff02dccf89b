"""The list of every rule class (importing it loads every rule module)."""


from gap_ls.rules.concurrency.await_interleaved_update import AwaitInterleavedUpdate
from gap_ls.rules.concurrency.check_then_act import CheckThenAct
from gap_ls.rules.concurrency.exists_then_create import ExistsThenCreate
from gap_ls.rules.concurrency.inconsistent_locking import InconsistentLocking
from gap_ls.rules.concurrency.lock_not_shared import LockNotShared
from gap_ls.rules.concurrency.orm_lost_update import OrmLostUpdate
from gap_ls.rules.concurrency.unlocked_shared_update import UnlockedSharedUpdate
from gap_ls.rules.errors.broad_handler_continues import BroadHandlerContinues
from gap_ls.rules.errors.broad_suppress import BroadSuppress
from gap_ls.rules.errors.cancellation_swallowed import CancellationSwallowed
from gap_ls.rules.errors.logged_then_defaulted import LoggedThenDefaulted
from gap_ls.rules.errors.operational_error_to_success import OperationalErrorToSuccess
from gap_ls.rules.errors.retry_exhausted_silently import RetryExhaustedSilently
from gap_ls.rules.errors.unobserved_async_result import UnobservedAsyncResult
from gap_ls.rules.idempotency.at_least_once import AtLeastOnceWithoutDedup
from gap_ls.rules.idempotency.effect_before_retry import SideEffectBeforeRetryPoint
from gap_ls.rules.idempotency.key_per_attempt import KeyRegeneratedPerAttempt
from gap_ls.rules.idempotency.retried_side_effect import RetriedSideEffectWithoutKey
from gap_ls.rules.idempotency.unsafe_http_retry import UnsafeHttpRetryPolicy
from gap_ls.rules.meta.syntax_error import UnparsableFile
from gap_ls.rules.meta.unused_suppression import UnusedSuppression
from gap_ls.rules.review.broadened_handler import BroadenedHandler
from gap_ls.rules.review.dropped_key import DroppedIdempotencyKey
from gap_ls.rules.review.dropped_lock import DroppedLock
from gap_ls.rules.review.dropped_reraise import DroppedReraise

ALL_RULES = (
    UnparsableFile,
    UnusedSuppression,
    BroadHandlerContinues,
    LoggedThenDefaulted,
    BroadSuppress,
    UnobservedAsyncResult,
    RetryExhaustedSilently,
    OperationalErrorToSuccess,
    CancellationSwallowed,
    DroppedReraise,
    BroadenedHandler,
    UnlockedSharedUpdate,
    InconsistentLocking,
    CheckThenAct,
    AwaitInterleavedUpdate,
    OrmLostUpdate,
    ExistsThenCreate,
    LockNotShared,
    DroppedLock,
    RetriedSideEffectWithoutKey,
    KeyRegeneratedPerAttempt,
    UnsafeHttpRetryPolicy,
    AtLeastOnceWithoutDedup,
    SideEffectBeforeRetryPoint,
    DroppedIdempotencyKey,
)
