"""What cannot be checked locally about constructs that carry no finding.

A `with lock:` protects threads of one process, not several worker
processes or hosts; a retry decorator retries some exceptions and re-runs
whatever it wraps; an idempotency key only helps if it is stable across
attempts and remembered long enough. ``construct_note`` finds such a
construct at a position and says what to verify elsewhere. Hover shows it.
Pure: works on the unit at the position only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gap_ls.core.idempotency import KEY_ARGUMENTS, RETRY_DECORATORS
from gap_ls.core.model import Position, Span
from gap_ls.core.nodes import call_name, dotted_name, keyword, node_positions, string_value
from gap_ls.core.source import Unit
from gap_ls.core.summary import LOCK_CONSTRUCTORS, ModuleSummary

KEY_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})
_LOCK_NAME = re.compile(r"lock|mutex|semaphore", re.IGNORECASE)
_ASYNC_LOCKS = ("asyncio.", "anyio.", "trio.")


@dataclass(frozen=True)
class Note:
    title: str
    what_it_does: str
    cannot_verify: tuple[str, ...]
    span: Span


def construct_note(unit: Unit | None, summary: ModuleSummary, position: Position) -> Note | None:
    """The note for the innermost lock, retry decorator or key at ``position`` in ``unit``."""
    if unit is None:
        return None
    module = cst.parse_module(unit.parse_text())
    positions = node_positions(module)
    offset = unit.line_offset()
    spans = {
        node: Span.of(r.start.line - 1 + offset, r.start.column, r.end.line - 1 + offset, r.end.column)
        for node, r in positions.items()
    }
    inside = [node for node, span in spans.items() if _contains(span, position)]
    # Innermost construct first.
    for node in sorted(inside, key=lambda n: _size(spans[n])):
        note = _note_for(node, summary, spans)
        if note is not None:
            return note
    return None


def _contains(span: Span, position: Position) -> bool:
    return span.start <= position <= span.end


def _size(span: Span) -> tuple[int, int]:
    return (span.end.line - span.start.line, span.end.column - span.start.column)


def _note_for(node: cst.CSTNode, summary: ModuleSummary, spans: dict[cst.CSTNode, Span]) -> Note | None:
    if isinstance(node, cst.WithItem):
        return _lock_note(node, summary, spans[node])
    if isinstance(node, cst.Decorator):
        return _retry_note(node, summary, spans[node])
    if isinstance(node, cst.Arg) and node.keyword is not None and node.keyword.value in KEY_ARGUMENTS:
        return _key_note(node.keyword.value, spans[node])
    if isinstance(node, cst.DictElement) and (string_value(node.key) or "").lower() in KEY_HEADERS:
        return _key_note(f"{string_value(node.key)} header", spans[node])
    return None


def _lock_note(item: cst.WithItem, summary: ModuleSummary, span: Span) -> Note | None:
    expression = item.item
    name = dotted_name(expression) or call_name(expression) or ""
    created = summary.qualify(call_name(expression) or "") if isinstance(expression, cst.Call) else None
    kind = summary.locks.get(name) or (created if created in LOCK_CONSTRUCTORS else None)
    last = name.rsplit(".", 1)[-1]
    is_lock_attribute = any(last in c.lock_attributes for c in summary.classes.values())
    if kind is None and not is_lock_attribute and not _LOCK_NAME.search(last):
        return None
    asynchronous = bool(kind and kind.startswith(_ASYNC_LOCKS))
    scope = "coroutines on one event loop" if asynchronous else "threads of this one process"
    return Note(
        title=f"`{name}`: an in-process lock",
        what_it_does=f"Serialises {scope} while the block runs.",
        cannot_verify=(
            "whether this code runs in several worker processes (gunicorn/uwsgi workers, Celery workers) "
            "or on several hosts: an in-process lock does not serialise them — use a database row lock "
            "(`select_for_update()`), an advisory lock, or a Redis lock with an expiry for that",
            "whether every other writer of the same state takes this same lock",
            "whether the block does slow I/O while holding it",
        ),
        span=span,
    )


def _retry_note(decorator: cst.Decorator, summary: ModuleSummary, span: Span) -> Note | None:
    target = decorator.decorator
    call = target if isinstance(target, cst.Call) else None
    name = dotted_name(call.func if call is not None else target)
    if name is None or summary.qualify(name) not in RETRY_DECORATORS:
        return None
    details = []
    if call is not None:
        for option in ("stop", "retry", "reraise", "max_tries", "max_time", "wait"):
            arg = keyword(call, option)
            if arg is not None:
                details.append(f"`{option}={cst.Module(body=[]).code_for_node(arg.value)}`")
    configured = f" Configured with {', '.join(details)}." if details else " No stop condition is given."
    return Note(
        title=f"`@{summary.qualify(name)}`: a retry",
        what_it_does="Runs the decorated function again when it fails." + configured,
        cannot_verify=(
            "whether the wrapped work is safe to repeat: a payment, a POST, an insert or an e-mail "
            "sent by an earlier attempt is sent again unless it carries an idempotency key",
            "which exceptions are worth retrying (a timeout after the request was sent may have succeeded)",
            "whether the last failure reaches the caller (tenacity: `reraise=True`, else `RetryError`)",
        ),
        span=span,
    )


def _key_note(what: str, span: Span) -> Note:
    return Note(
        title=f"`{what}`: an idempotency key",
        what_it_does="Lets the receiving service recognise a repeated request and not act on it twice.",
        cannot_verify=(
            "whether the key is stable across attempts: made once per logical operation, outside any retry, "
            "not regenerated (uuid4(), time) on each attempt",
            "whether the remote service honours the key and remembers it long enough (Stripe keeps keys 24 h)",
            "whether the key is unique per logical operation and not reused for a different payload",
        ),
        span=span,
    )
