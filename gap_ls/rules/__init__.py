"""Every rule gap-ls ships, one module per rule, grouped by family.

Adding a rule: write its module (docstring = documentation), list its class in
``all_rules.py`` and its code in ``gap_ls/core/catalogue.py``. A test fails if a module
under rules/ defines a rule that is not listed, or if two rules share a code.

Importing this package loads no rule: a run loads only the modules of the rules it
enables (see ``registry.enabled_rules``); ``ALL_RULES`` loads them all on first use.
"""


def __getattr__(name: str):
    if name == "ALL_RULES":
        from gap_ls.rules.all_rules import ALL_RULES

        return ALL_RULES
    raise AttributeError(name)
