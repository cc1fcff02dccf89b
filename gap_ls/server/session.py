"""Server state that is not a document: client capabilities and settings per workspace folder.

Editor settings (from `initializationOptions`, `workspace/configuration` or
`didChangeConfiguration`) use the `[tool.gap-ls]` key names plus the
behaviour keys `run` ("onType" | "onSave") and `debounce` (milliseconds).
For a document, the nearest `pyproject.toml`'s `[tool.gap-ls]` is read (and
re-read when it changes) and the folder's editor settings are merged over
it. Mutated only on the event loop; analysis threads get frozen Settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from gap_ls.core import registry
from gap_ls.core.settings import ATTRIBUTE_OF_KEY, ConfigError, Settings, find_config, load_file, settings_from_table

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_MS = 200
BEHAVIOUR_KEYS = {"run", "on", "debounce", "debounceMs", "logLevel", "trace"}


@dataclass(frozen=True)
class ClientFeatures:
    """The client capabilities the server acts on, resolved once at initialize."""

    pull_diagnostics: bool = False
    diagnostic_refresh: bool = False
    resolve_edits: bool = False
    markdown_hover: bool = False
    related_information: bool = False
    code_description: bool = False
    versioned_edits: bool = False
    configuration: bool = False
    watch_files: bool = False

    @classmethod
    def of(cls, capabilities: types.ClientCapabilities) -> ClientFeatures:
        text = capabilities.text_document
        workspace = capabilities.workspace
        publish = text.publish_diagnostics if text else None
        code_action = text.code_action if text else None
        resolve = code_action.resolve_support if code_action else None
        hover = text.hover if text else None
        return cls(
            pull_diagnostics=bool(text and text.diagnostic),
            diagnostic_refresh=bool(workspace and workspace.diagnostics and workspace.diagnostics.refresh_support),
            resolve_edits=bool(resolve and "edit" in (resolve.properties or [])),
            markdown_hover=bool(hover and types.MarkupKind.Markdown in (hover.content_format or [])),
            related_information=bool(publish and publish.related_information) or bool(text and text.diagnostic),
            code_description=bool(publish and publish.code_description_support) or bool(text and text.diagnostic),
            versioned_edits=bool(workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes),
            configuration=bool(workspace and workspace.configuration),
            watch_files=bool(
                workspace
                and workspace.did_change_watched_files
                and workspace.did_change_watched_files.dynamic_registration
            ),
        )


@dataclass(frozen=True)
class Behaviour:
    run: str = "onType"  # or "onSave"
    debounce_ms: int = DEFAULT_DEBOUNCE_MS


@dataclass
class EditorSettings:
    """What the editor sent for one scope (a workspace folder, or everything)."""

    table: dict[str, Any] = field(default_factory=dict)
    behaviour: Behaviour = field(default_factory=Behaviour)
    overrides: Settings = field(default_factory=Settings)
    present: frozenset[str] = frozenset()  # Settings attributes the editor set


def parse_editor_settings(raw: Any, origin: str) -> tuple[EditorSettings, list[str]]:
    """Validate editor settings; problems become warnings, never exceptions."""
    if raw is None:
        return EditorSettings(), []
    if not isinstance(raw, Mapping):
        return EditorSettings(), [f"{origin}: expected an object, got {type(raw).__name__}"]
    table = dict(raw)
    for wrapper in ("gap", "gap-ls", "settings"):
        if isinstance(table.get(wrapper), Mapping) and len(table) == 1:
            table = dict(table[wrapper])
    warnings: list[str] = []
    behaviour = _behaviour(table, origin, warnings)
    analysis = {k: v for k, v in table.items() if k not in BEHAVIOUR_KEYS}
    try:
        loaded = settings_from_table(analysis, origin)
    except ConfigError as exc:
        warnings.append(str(exc))
        return EditorSettings(table=table, behaviour=behaviour), warnings
    warnings.extend(loaded.warnings)
    warnings.extend(registry.settings_warnings(replace(loaded.settings, config_file=Path(origin))))
    present = frozenset(ATTRIBUTE_OF_KEY[key] for key in analysis if key in ATTRIBUTE_OF_KEY)
    return EditorSettings(table, behaviour, loaded.settings, present), warnings


def _behaviour(table: Mapping[str, Any], origin: str, warnings: list[str]) -> Behaviour:
    run = table.get("run", table.get("on", "onType"))
    normalised = {"ontype": "onType", "type": "onType", "onsave": "onSave", "save": "onSave"}.get(str(run).lower())
    if normalised is None:
        warnings.append(f"{origin}: `run` must be \"onType\" or \"onSave\", got {run!r}; using onType")
        normalised = "onType"
    debounce = table.get("debounce", table.get("debounceMs", DEFAULT_DEBOUNCE_MS))
    if not isinstance(debounce, (int, float)) or isinstance(debounce, bool) or not 0 <= debounce <= 10_000:
        warnings.append(f"{origin}: `debounce` must be a number of milliseconds (0-10000), got {debounce!r}")
        debounce = DEFAULT_DEBOUNCE_MS
    return Behaviour(run=normalised, debounce_ms=int(debounce))


@dataclass
class _ProjectConfig:
    mtime: float
    settings: Settings
    warnings: tuple[str, ...]


class Session:
    """Settings per folder, the project configuration cache and the client's features."""

    def __init__(self) -> None:
        self.client = ClientFeatures()
        self.global_settings = EditorSettings()
        self.folder_settings: dict[str, EditorSettings] = {}  # folder path -> settings
        self.folders: list[Path] = []
        self._configs: dict[Path, _ProjectConfig] = {}
        self._config_for_dir: dict[Path, Path | None] = {}

    def set_folders(self, folders: list[types.WorkspaceFolder], root_uri: str | None) -> None:
        paths = [to_fs_path(f.uri) for f in folders] or ([to_fs_path(root_uri)] if root_uri else [])
        self.folders = [Path(p) for p in paths if p]

    def folder_of(self, path: Path | None) -> Path | None:
        if path is None:
            return None
        matches = [f for f in self.folders if path == f or f in path.parents]
        return max(matches, key=lambda f: len(f.parts)) if matches else None

    def editor_settings(self, path: Path | None) -> EditorSettings:
        folder = self.folder_of(path)
        if folder is not None and str(folder) in self.folder_settings:
            return self.folder_settings[str(folder)]
        return self.global_settings

    def behaviour(self, path: Path | None) -> Behaviour:
        return self.editor_settings(path).behaviour

    def forget_project_configs(self) -> None:
        self._configs.clear()
        self._config_for_dir.clear()

    def settings_for(self, path: Path | None) -> tuple[Settings, list[str]]:
        """Project settings (nearest pyproject.toml) with the folder's editor settings over them."""
        project, warnings = self._project_settings(path)
        editor = self.editor_settings(path)
        merged = replace(project, **{name: getattr(editor.overrides, name) for name in editor.present})
        return merged, warnings

    def _project_settings(self, path: Path | None) -> tuple[Settings, list[str]]:
        if path is None:
            return Settings(), []
        directory = path.parent
        if directory not in self._config_for_dir:
            try:
                self._config_for_dir[directory] = find_config(directory)
            except ConfigError as exc:
                return Settings(), [str(exc)]
        config = self._config_for_dir[directory]
        if config is None:
            return Settings(root=self.folder_of(path)), []
        try:
            mtime = config.stat().st_mtime
        except OSError:
            self.forget_project_configs()  # the file went away: look again next time
            return Settings(), []
        cached = self._configs.get(config)
        if cached is None or cached.mtime != mtime:
            try:
                loaded = load_file(config)
            except ConfigError as exc:
                return Settings(root=config.parent), [str(exc)]
            warnings = (*loaded.warnings, *registry.settings_warnings(loaded.settings))
            cached = _ProjectConfig(mtime, loaded.settings, warnings)
            self._configs[config] = cached
        return cached.settings, list(cached.warnings)
