"""All rules by code, and which of them a configuration enables.

Selectors are rule codes, code prefixes ("GAP1", "GAP10") or family names
("swallowed-error"). As in ruff, the most specific selector wins between
`select` and `ignore`; on a tie, `ignore` wins. GAP000 (the file does not
parse) is reported unless it is ignored explicitly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from gap_ls.core.settings import Settings

if TYPE_CHECKING:  # the rules (and libcst) load on first use: a cached `gap-ls check` never needs them
    from gap_ls.core.rule import Rule

SYNTAX_ERROR = "GAP000"
UNUSED_SUPPRESSION = "GAP001"


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    from gap_ls.rules import ALL_RULES

    return tuple(sorted(ALL_RULES, key=lambda rule: rule.code))


def rule_by_code(code: str) -> type[Rule] | None:
    wanted = code.strip().upper()
    for rule in all_rules():
        if rule.code == wanted or rule.name == code.strip().lower():
            return rule
    return None


def known_codes() -> frozenset[str]:
    from gap_ls.core.catalogue import CATALOGUE

    return frozenset(entry[0] for entry in CATALOGUE)


def _specificity(selector: str, rule: type[Rule]) -> int | None:
    """How specifically ``selector`` names ``rule`` (None: it does not)."""
    return _specificity_of(selector, rule.code, rule.name, rule.family.value)


def _specificity_of(selector: str, code: str, name: str, family: str) -> int | None:
    if selector.lower() == family:
        return 1
    if selector.lower() == name:
        return 10
    upper = selector.upper()
    if code.startswith(upper):
        return len(upper)
    return None


def _best(selectors: Iterable[str], rule: type[Rule]) -> int:
    return _best_of(selectors, rule.code, rule.name, rule.family.value)


def _best_of(selectors: Iterable[str], code: str, name: str, family: str) -> int:
    return max((s for s in (_specificity_of(sel, code, name, family) for sel in selectors) if s is not None), default=-1)


def is_enabled(rule: type[Rule], settings: Settings, extra_ignores: Iterable[str] = ()) -> bool:
    ignores = (*settings.ignore, *extra_ignores)
    selected = _best(settings.select, rule)
    ignored = _best(ignores, rule)
    if rule.code == SYNTAX_ERROR:
        return not any(sel.upper() == SYNTAX_ERROR for sel in ignores)
    return selected >= 0 and selected > ignored


def enabled_rules(settings: Settings, extra_ignores: Iterable[str] = ()) -> tuple[type[Rule], ...]:
    """The enabled rules, chosen from the catalogue: only their modules are imported."""
    from gap_ls.core.catalogue import CATALOGUE

    ignores = (*settings.ignore, *extra_ignores)
    chosen = []
    for code, name, family, target in CATALOGUE:
        if code == SYNTAX_ERROR:
            enabled = not any(sel.upper() == SYNTAX_ERROR for sel in ignores)
        else:
            selected = _best_of(settings.select, code, name, family)
            enabled = selected >= 0 and selected > _best_of(ignores, code, name, family)
        if enabled:
            chosen.append(_load(target))
    return tuple(chosen)


@cache
def _load(target: str) -> type[Rule]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def unknown_selectors(selectors: Iterable[str]) -> list[str]:
    """Selectors that name no rule, for a warning that names them (read from the catalogue:
    no rule module is imported)."""
    from gap_ls.core.catalogue import CATALOGUE

    return [sel for sel in selectors if not any(_specificity_of(sel, *entry[:3]) is not None for entry in CATALOGUE)]


def settings_warnings(settings: Settings) -> list[str]:
    origin = str(settings.config_file) if settings.config_file else "settings"
    warnings = []
    for key, selectors in (
        ("select", settings.select),
        ("ignore", settings.ignore),
        ("severity", tuple(settings.severity)),
        ("per-file-ignores", tuple(c for codes in settings.per_file_ignores.values() for c in codes)),
    ):
        for selector in unknown_selectors(selectors):
            warnings.append(f"{origin}: `{key}` names unknown rule code {selector!r}")
    return warnings


def severity_of(rule: type[Rule], settings: Settings):
    """The configured severity for ``rule`` (most specific selector wins), else its default."""
    best = None
    best_score = -1
    for selector, severity in settings.severity.items():
        score = _specificity(selector, rule)
        if score is not None and score > best_score:
            best, best_score = severity, score
    return best if best is not None else rule.severity
