"""Which files `gap-ls check` analyses, and with which settings.

Walks folders (never following directory symlinks, skipping virtualenvs,
VCS and build folders and the configured `exclude` globs), resolves each
file's nearest `[tool.gap-ls]` configuration once per folder, and turns
problems (missing paths, symlink loops, unreadable folders, broken
configuration) into messages rather than tracebacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gap_ls.core import registry
from gap_ls.core.settings import DEFAULT_EXCLUDE, ConfigError, LoadedSettings, Settings, find_config, load_file


@dataclass
class SettingsResolver:
    """Settings per folder: nearest pyproject.toml (or --config), then command-line overrides."""

    overrides: dict[str, object] = field(default_factory=dict)
    config_file: Path | None = None
    warnings: list[str] = field(default_factory=list)
    _by_config: dict[Path | None, Settings] = field(default_factory=dict)
    _by_folder: dict[Path, Path | None] = field(default_factory=dict)
    _by_raw_folder: dict[Path, Settings] = field(default_factory=dict)  # as given: skips resolve()

    def for_path(self, path: Path) -> Settings:
        folder = path if path.is_dir() else path.parent
        if folder not in self._by_raw_folder:
            self._by_raw_folder[folder] = self._for_folder(folder.resolve())
        return self._by_raw_folder[folder]

    def _for_folder(self, folder: Path) -> Settings:
        if self.config_file is not None:
            config = self.config_file.resolve()
        elif folder in self._by_folder:
            config = self._by_folder[folder]
        else:
            config = find_config(folder)
            self._by_folder[folder] = config
        if config not in self._by_config:
            self._by_config[config] = self._load(config)
        return self._by_config[config]

    def _load(self, config: Path | None) -> Settings:
        loaded = load_file(config) if config is not None else LoadedSettings(Settings(root=Path.cwd()))
        settings = loaded.settings.with_overrides(**self.overrides)
        self.warnings.extend(loaded.warnings)
        self.warnings.extend(registry.settings_warnings(settings))
        return settings


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


def discover(
    paths: list[str], resolver: SettingsResolver, force_exclude: bool, problems: list[Problem]
) -> Iterator[Path]:
    """Python files under ``paths``, each once; problems are appended, never raised."""
    seen: set[tuple[int, int]] = set()
    for raw in paths:
        path = Path(raw)
        try:
            is_dir = path.is_dir()
            exists = is_dir or path.is_file()
        except OSError as exc:  # e.g. a symlink loop: ELOOP
            problems.append(Problem(raw, _describe(exc)))
            continue
        if not exists:
            reason = "symlink loop or dangling symlink" if path.is_symlink() else "no such file or directory"
            problems.append(Problem(raw, reason))
            continue
        if is_dir:
            yield from _walk(path, resolver, problems, seen)
        elif not (force_exclude and resolver.for_path(path).is_excluded(path)):
            yield from _once(path, seen, problems)


def _once(path: Path, seen: set[tuple[int, int]], problems: list[Problem]) -> Iterator[Path]:
    try:
        status = path.stat()  # follows symlinks: a file reached twice has one (device, inode)
    except OSError as exc:  # e.g. ELOOP for a symlink loop
        problems.append(Problem(str(path), _describe(exc)))
        return
    key = (status.st_dev, status.st_ino)
    if key not in seen:
        seen.add(key)
        yield path


def _walk(root: Path, resolver: SettingsResolver, problems: list[Problem], seen: set[tuple[int, int]]) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        problems.append(Problem(exc.filename or str(root), _describe(exc)))

    for folder, dirs, files in os.walk(root, onerror=on_error):
        here = Path(folder)
        settings = resolver.for_path(here)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in DEFAULT_EXCLUDE and not d.endswith(".egg-info") and not settings.is_excluded(here / d, root)
        )
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            file = here / name
            if settings.is_excluded(file, root):
                continue
            yield from _once(file, seen, problems)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


__all__ = ["ConfigError", "Problem", "SettingsResolver", "discover"]
