"""Rule documentation: every rule documents itself, docs/rules/ is generated and up to date."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import gap_ls.rules
from gap_ls.cli import rule_doc_pages
from gap_ls.core import registry
from gap_ls.core.rule import Rule
from gap_ls.core.ruledocs import missing_sections, rule_doc
from tests.conftest import ROOT


@pytest.mark.parametrize("rule", registry.all_rules(), ids=lambda r: r.code)
def test_rule_docstring_has_every_section(rule):
    doc = rule_doc(rule)
    assert missing_sections(doc) == []
    assert doc.summary.endswith(".")
    assert rule.title and rule.name == rule.name.lower()


def test_codes_and_names_are_unique():
    rules = registry.all_rules()
    assert len({r.code for r in rules}) == len(rules)
    assert len({r.name for r in rules}) == len(rules)


def test_catalogue_matches_the_rules():
    from gap_ls.core.catalogue import CATALOGUE

    classes = tuple((r.code, r.name, r.family.value, f"{r.__module__}:{r.__name__}") for r in registry.all_rules())
    assert CATALOGUE == classes


def test_every_rule_module_is_registered():
    defined = set()
    for module in pkgutil.walk_packages(gap_ls.rules.__path__, "gap_ls.rules."):
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, Rule) and getattr(value, "code", None) and value.__module__ == loaded.__name__:
                defined.add(value)
    assert defined == set(registry.all_rules())


def test_generated_rule_pages_are_up_to_date():
    folder = ROOT / "docs" / "rules"
    expected = rule_doc_pages()
    actual = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.md")}
    assert actual == expected, "run `gap-ls rules --write-docs docs/rules` and commit the result"
