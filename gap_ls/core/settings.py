"""Settings: `[tool.gap-ls]` from the nearest pyproject.toml, validated, merged with overrides.

Owns the configuration schema and its validation messages. Unknown keys are
warnings that name the key; a file that is not valid TOML or a value of the
wrong type is a ConfigError with the file and key in its message. Knows no
rules: codes are checked against the registry by the caller.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from gap_ls.core.model import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SECTION = "gap-ls"

# Folders never worth walking into.
DEFAULT_EXCLUDE = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".env",
    "env",
    "node_modules",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gap_ls_cache",
    ".eggs",
    "build",
    "dist",
    "_build",
    "buck-out",
    "site-packages",
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("GAP",)
    ignore: tuple[str, ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Knowledge that extends the built-in catalogues (dotted names or suffixes).
    logging_calls: tuple[str, ...] = ()
    error_boundaries: tuple[str, ...] = ()
    retry_decorators: tuple[str, ...] = ()
    side_effect_calls: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    lock_types: tuple[str, ...] = ()
    # Where the settings came from; exclude and per-file globs are relative to root.
    root: Path | None = None
    config_file: Path | None = None

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def relative_path(self, path: Path) -> PurePosixPath | None:
        if self.root is None:
            return None
        try:
            return PurePosixPath(path.resolve().relative_to(_resolved(self.root)).as_posix())
        except ValueError:
            return None

    def is_excluded(self, path: Path, explicit: Path | None = None) -> bool:
        """Whether ``path`` matches `exclude`.

        ``explicit`` is a folder the user named on the command line: like ruff,
        gap-ls never excludes what it was explicitly asked to check, so only the
        part of ``path`` below ``explicit`` is matched.
        """
        if not self.exclude:
            return False
        relative = self.relative_path(path)
        target = relative if relative is not None else PurePosixPath(path.as_posix())
        skip = 0
        if explicit is not None:
            named = self.relative_path(explicit)
            skip = len(named.parts) if named is not None and named.parts != (".",) else 0
        return any(_glob_matches(target, pattern, skip) for pattern in self.exclude)

    def ignored_for(self, path: Path | None) -> tuple[str, ...]:
        if path is None or not self.per_file_ignores:
            return ()
        relative = self.relative_path(path) or PurePosixPath(path.as_posix())
        codes: list[str] = []
        for pattern, pattern_codes in self.per_file_ignores.items():
            if _glob_matches(relative, pattern):
                codes.extend(pattern_codes)
        return tuple(codes)


@functools.lru_cache(maxsize=64)
def _resolved(root: Path) -> Path:
    return root.resolve()


def _glob_matches(path: PurePath, pattern: str, skip: int = 0) -> bool:
    """Match like ruff's exclude: the pattern matches the path or one of its parent folders.

    The first ``skip`` parts of the path (a folder named explicitly) are never matched alone.
    """
    pattern = pattern.rstrip("/")
    parts = path.parts
    return any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), pattern) for i in range(skip, len(parts)))


_LIST_KEYS = {
    "select": "select",
    "ignore": "ignore",
    "exclude": "exclude",
    "extend-exclude": "exclude",
    "logging-calls": "logging_calls",
    "error-boundaries": "error_boundaries",
    "retry-decorators": "retry_decorators",
    "side-effect-calls": "side_effect_calls",
    "key-names": "key_names",
    "lock-types": "lock_types",
}
_TABLE_KEYS = {"severity", "per-file-ignores"}
# Every configuration key and the Settings attribute it sets (editor settings use the same keys).
ATTRIBUTE_OF_KEY = {**_LIST_KEYS, "severity": "severity", "per-file-ignores": "per_file_ignores"}


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    warnings: tuple[str, ...] = ()


def settings_from_table(table: Mapping[str, Any], origin: str, root: Path | None = None) -> LoadedSettings:
    """Validate a `[tool.gap-ls]`-shaped mapping (also used for editor settings)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: [tool.{SECTION}] must be a table")
    warnings: list[str] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _LIST_KEYS:
            attribute = _LIST_KEYS[key]
            values[attribute] = values.get(attribute, ()) + _string_list(value, key, origin)
        elif key == "severity":
            values["severity"] = _severities(value, origin)
        elif key == "per-file-ignores":
            values["per_file_ignores"] = _per_file_ignores(value, origin)
        else:
            known = ", ".join(sorted([*_LIST_KEYS, *_TABLE_KEYS]))
            warnings.append(f"{origin}: unknown key {key!r} in [tool.{SECTION}] (known keys: {known})")
    return LoadedSettings(Settings(root=root, **values), tuple(warnings))


def _string_list(value: Any, key: str, origin: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{origin}: `{key}` must be a list of strings, got {value!r}")
    return tuple(value)


def _severities(value: Any, origin: str) -> dict[str, Severity]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{origin}: `severity` must be a table like {{ GAP101 = \"error\" }}")
    out: dict[str, Severity] = {}
    for code, level in value.items():
        if not isinstance(level, str):
            raise ConfigError(f"{origin}: severity of {code} must be a string, got {level!r}")
        try:
            out[code] = Severity.parse(level)
        except ValueError as exc:
            raise ConfigError(f"{origin}: severity of {code}: {exc}") from None
    return out


def _per_file_ignores(value: Any, origin: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{origin}: `per-file-ignores` must be a table of glob = [codes]")
    return {pattern: _string_list(codes, f"per-file-ignores.{pattern}", origin) for pattern, codes in value.items()}


def read_pyproject(path: Path) -> Mapping[str, Any] | None:
    """The `[tool.gap-ls]` table of ``path``, None if it has none; ConfigError if unreadable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    tool = data.get("tool", {})
    section = tool.get(SECTION) if isinstance(tool, Mapping) else None
    return section


def load_file(path: Path) -> LoadedSettings:
    table = read_pyproject(path)
    if table is None:
        return LoadedSettings(Settings(root=path.parent, config_file=path))
    loaded = settings_from_table(table, str(path), root=path.parent)
    return LoadedSettings(replace(loaded.settings, config_file=path), loaded.warnings)


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml with a [tool.gap-ls] table, walking up from ``start``."""
    directory = start if start.is_dir() else start.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        if candidate.is_file() and read_pyproject(candidate) is not None:
            return candidate
    return None
