"""The idempotency catalogue is extended from `[tool.gap-ls]`: the project's own retry
decorators, side-effect calls and key arguments count like the built-in ones."""

from __future__ import annotations

import textwrap

from gap_ls.core.engine import analyze
from gap_ls.core.settings import Settings

SOURCE = textwrap.dedent(
    """\
    from myapp.resilience import retrying
    from myapp import ledger


    @retrying(attempts=3)
    def book(entry, token):
        ledger.post_entry(entry)


    @retrying(attempts=3)
    def book_once(entry, token):
        ledger.post_entry(entry, op_token=token)
    """
)


def codes(settings: Settings) -> list[tuple[str, int]]:
    return [(f.code, f.span.start.line + 1) for f in analyze(SOURCE, settings).findings]


def test_unknown_retry_decorator_and_side_effect_are_silent_by_default():
    assert codes(Settings(select=("idempotency",))) == []


def test_project_catalogue_makes_them_count_and_a_project_key_makes_it_safe():
    settings = Settings(
        select=("idempotency",),
        retry_decorators=("myapp.resilience.retrying",),
        side_effect_calls=("myapp.ledger.post_entry",),
        key_names=("op_token",),
    )
    assert codes(settings) == [("GAP301", 7)]


def test_a_side_effect_suffix_matches_any_receiver():
    settings = Settings(select=("idempotency",), retry_decorators=("myapp.resilience.retrying",),
                        side_effect_calls=(".post_entry",))
    assert [code for code, _ in codes(settings)] == ["GAP301", "GAP301"]
