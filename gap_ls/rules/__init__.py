"""Every rule gap-ls ships, one module per rule, grouped by family.

Adding a rule: write its module (docstring = documentation), then list its
class here. A test fails if a module under rules/ defines a rule that is not
listed, or if two rules share a code.
"""

from gap_ls.rules.errors.broad_handler_continues import BroadHandlerContinues
from gap_ls.rules.errors.broad_suppress import BroadSuppress
from gap_ls.rules.errors.cancellation_swallowed import CancellationSwallowed
from gap_ls.rules.errors.logged_then_defaulted import LoggedThenDefaulted
from gap_ls.rules.errors.operational_error_to_success import OperationalErrorToSuccess
from gap_ls.rules.errors.retry_exhausted_silently import RetryExhaustedSilently
from gap_ls.rules.errors.unobserved_async_result import UnobservedAsyncResult
from gap_ls.rules.meta.syntax_error import UnparsableFile
from gap_ls.rules.meta.unused_suppression import UnusedSuppression

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
)
