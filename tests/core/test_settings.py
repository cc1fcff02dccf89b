"""Configuration: validation, selection by code/prefix/family, severities, globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gap_ls.core import registry
from gap_ls.core.model import Severity
from gap_ls.core.settings import ConfigError, Settings, find_config, load_file, settings_from_table


def enabled(**kwargs) -> set[str]:
    return {rule.code for rule in registry.enabled_rules(Settings(**kwargs))}


def test_default_enables_everything():
    assert enabled() == registry.known_codes()


def test_most_specific_selector_wins():
    assert "GAP103" not in enabled(select=("GAP1",), ignore=("GAP103",))
    assert enabled(select=("GAP103",), ignore=("GAP1",)) == {"GAP000", "GAP103"}
    assert enabled(select=("swallowed-error",), ignore=("GAP10",)) == {"GAP000", "GAP191", "GAP192"}
    assert "GAP101" in enabled(select=("broad-handler-continues",))


def test_syntax_errors_are_reported_unless_ignored_explicitly():
    assert "GAP000" in enabled(select=("GAP1",))
    assert "GAP000" not in enabled(ignore=("GAP000",))


def test_severity_override_by_prefix_and_code():
    settings = Settings(severity={"GAP1": Severity.ERROR, "GAP103": Severity.HINT})
    by_code = {rule.code: registry.severity_of(rule, settings) for rule in registry.all_rules()}
    assert by_code["GAP101"] is Severity.ERROR and by_code["GAP103"] is Severity.HINT
    assert by_code["GAP001"] is Severity.WARNING


def test_table_validation():
    loaded = settings_from_table({"select": "GAP1", "typo": 1, "severity": {"GAP101": "Error"}}, "pyproject.toml")
    assert loaded.settings.select == ("GAP1",)
    assert loaded.settings.severity == {"GAP101": Severity.ERROR}
    assert any("unknown key 'typo'" in w for w in loaded.warnings)
    with pytest.raises(ConfigError, match="severity of GAP101: unknown severity 'loud'"):
        settings_from_table({"severity": {"GAP101": "loud"}}, "pyproject.toml")
    with pytest.raises(ConfigError, match="per-file-ignores"):
        settings_from_table({"per-file-ignores": ["x"]}, "pyproject.toml")


def test_unknown_codes_warn():
    warnings = registry.settings_warnings(Settings(select=("GAP1", "GAP9"), ignore=("E501",)))
    assert warnings == [
        "settings: `select` names unknown rule code 'GAP9'",
        "settings: `ignore` names unknown rule code 'E501'",
    ]


def test_find_config_skips_pyprojects_without_our_table(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.gap-ls]\nignore = ["GAP103"]\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    found = find_config(tmp_path / "pkg")
    assert found == tmp_path / "pyproject.toml"
    assert load_file(found).settings.ignore == ("GAP103",)


def test_exclude_and_per_file_globs(tmp_path: Path):
    settings = Settings(exclude=("generated", "*_pb2.py"), per_file_ignores={"tests/*": ("GAP103",)}, root=tmp_path)
    assert settings.is_excluded(tmp_path / "generated" / "x.py")
    assert settings.is_excluded(tmp_path / "api" / "user_pb2.py")
    assert not settings.is_excluded(tmp_path / "api" / "user.py")
    assert not settings.is_excluded(tmp_path / "generated" / "x.py", explicit=tmp_path / "generated")
    assert settings.ignored_for(tmp_path / "tests" / "test_x.py") == ("GAP103",)
    assert settings.ignored_for(tmp_path / "src" / "x.py") == ()
