"""The gap-ls language server: every LSP handler, in one place, each a few lines.

This module is the table of contents of the server. Handlers receive params,
call the session, the scheduler, the core or the fixes, and convert results
with ``convert``/``hover``; no rule logic lives here. Documents are kept by
the server itself (see ``documents``), so the protocol subclass below stops
pygls from keeping a second copy with different line semantics.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from gap_ls import __version__
from gap_ls.cli import git
from gap_ls.cli.review import collect, render_markdown
from gap_ls.core import registry
from gap_ls.core.model import Finding
from gap_ls.core.notes import construct_note
from gap_ls.core.resolve import JediResolver
from gap_ls.core.ruledocs import rule_doc
from gap_ls.fixes import FixContext, FixNotApplicable, actions_for, compute_edits
from gap_ls.server import convert, hover
from gap_ls.server.documents import Document, Encoding, server_position
from gap_ls.server.scheduler import DocumentAnalyses, Result, Scheduler, Snapshot
from gap_ls.server.session import ClientFeatures, Session, parse_editor_settings

log = logging.getLogger(__name__)

CONFIG_WATCH_ID = "gap-ls-pyproject-watch"


class GapProtocol(LanguageServerProtocol):
    """pygls's protocol without its document store: gap-ls keeps documents itself."""

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


CONFIGURATION_TIMEOUT_S = 10.0


class GapServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("gap-ls", __version__, protocol_cls=GapProtocol)
        self.session = Session()
        self.documents: dict[str, Document] = {}
        self.analysis_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gap-ls-analysis")
        self.analyses = DocumentAnalyses(git.head_text)
        self.scheduler = Scheduler(
            self.analysis_pool, self.snapshot, self.analyses.run, self.publish, self.analysis_failed, self.catch_up
        )
        self._shown_warnings: set[str] = set()
        self.saved_versions: dict[str, int] = {}  # uri -> the version last saved (for onSave pulls)
        self._resolvers: dict[Path | None, JediResolver] = {}

    # -- plumbing used by the handlers -------------------------------------------------------
    @property
    def encoding(self) -> Encoding:
        return Encoding(self.workspace.position_encoding)

    def snapshot(self, uri: str) -> Snapshot | None:
        document = self.documents.get(uri)
        if document is None:
            return None
        settings, warnings = self.session.settings_for(document.path)
        self.warn(warnings)
        folder = self.session.folder_of(document.path)
        resolver = self._resolvers.setdefault(folder, JediResolver(folder))
        return Snapshot(uri, document.version, document.text, tuple(document.lines), document.path, settings, resolver)

    def publish(self, result: Result) -> None:
        document = self.documents.get(result.snapshot.uri)
        if document is None or document.version != result.version or self.session.client.pull_diagnostics:
            return  # outdated, closed, or the client pulls
        diagnostics = self.diagnostics_of(result)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=document.uri, version=result.version, diagnostics=diagnostics)
        )

    def catch_up(self, uri: str) -> None:
        """A finished analysis is already outdated: push clients typing in onType mode get a new one."""
        document = self.documents.get(uri)
        if document is None or self.session.client.pull_diagnostics:
            return
        if self.session.behaviour(document.path).run == "onType":
            self.scheduler.schedule(uri, 0)

    def diagnostics_of(self, result: Result) -> list[types.Diagnostic]:
        lines = list(result.snapshot.lines)
        client = self.session.client
        # While a statement does not parse, its last findings stay (stale) rather than vanish.
        findings = (*result.analysis.findings, *result.analysis.stale)
        return [convert.to_diagnostic(f, result.snapshot.uri, lines, self.encoding, client, result.version) for f in findings]

    def analysis_failed(self, uri: str, error: BaseException) -> None:
        log.error("analysis of %s failed", uri, exc_info=error)
        self.window_log_message(
            types.LogMessageParams(type=types.MessageType.Error, message=f"gap-ls: analysis of {uri} failed: {error!r}")
        )

    def warn(self, warnings: list[str]) -> None:
        """Configuration problems: one window/showMessage per distinct warning."""
        for warning in warnings:
            if warning not in self._shown_warnings:
                self._shown_warnings.add(warning)
                self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"gap-ls: {warning}"))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Log failures and tell the client's log, never pop a dialog per keystroke."""
        log.error("%s: %s", getattr(source, "__name__", source), error)
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=f"gap-ls: {error}"))

    def reanalyse_open_documents(self) -> None:
        self.scheduler.invalidate()
        if self.session.client.pull_diagnostics:
            if self.session.client.diagnostic_refresh:
                self.workspace_diagnostic_refresh(None)
            return
        for uri in self.documents:
            self.scheduler.schedule(uri, 0)

    def apply_editor_settings(self, items: list[Any]) -> None:
        """Settings pulled per folder (`workspace/configuration`), in folder order."""
        for folder, raw in zip(self.session.folders, items, strict=False):  # a client may answer fewer items
            parsed, warnings = parse_editor_settings(raw, f"settings for {folder}")
            if raw is not None:
                self.session.folder_settings[str(folder)] = parsed
            self.warn(warnings)

    async def pull_configuration(self) -> None:
        scopes = self.session.folders or [None]
        params = types.ConfigurationParams(
            items=[types.ConfigurationItem(section="gap", scope_uri=f.as_uri() if f else None) for f in scopes]
        )
        try:
            # A client that fails to encode its answer may never send one (Emacs with a malformed
            # `eglot-workspace-configuration`): do not wait forever.
            items = await asyncio.wait_for(self.workspace_configuration_async(params), CONFIGURATION_TIMEOUT_S)
        except TimeoutError:  # gap: ignore[GAP106] no answer: keep the previous settings (said in the client log)
            message = (f"gap-ls: no answer to workspace/configuration after {CONFIGURATION_TIMEOUT_S:.0f} s; "
                       "keeping the previous settings")
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Warning, message=message))
            return
        except JsonRpcException as exc:
            # The client refused the request: keep the settings we have and say so in its log.
            message = f"gap-ls: workspace/configuration failed ({exc}); keeping the previous settings"
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Warning, message=message))
            return
        if self.session.folders:
            self.apply_editor_settings(list(items or []))
        elif items:
            parsed, warnings = parse_editor_settings(items[0], "editor settings")
            if items[0] is not None:
                self.session.global_settings = parsed
            self.warn(warnings)

    def latest(self, uri: str) -> Result | None:
        return self.scheduler.results.get(uri)


server = GapServer()
DOCS = {rule.code: rule_doc(rule) for rule in registry.all_rules()}


def _path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


# -- lifecycle -------------------------------------------------------------------------------


@server.feature(types.INITIALIZE)
def initialize(ls: GapServer, params: types.InitializeParams) -> None:
    ls.session.client = ClientFeatures.of(params.capabilities)
    ls.session.set_folders(list(params.workspace_folders or []), params.root_uri)
    parsed, warnings = parse_editor_settings(params.initialization_options, "initializationOptions")
    ls.session.global_settings = parsed
    ls.warn(warnings)


@server.feature(types.INITIALIZED)
async def initialized(ls: GapServer, params: types.InitializedParams) -> None:
    if ls.session.client.watch_files:
        watcher = types.FileSystemWatcher(glob_pattern="**/pyproject.toml")
        registration = types.Registration(
            id=CONFIG_WATCH_ID,
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=[watcher]),
        )
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    if ls.session.client.configuration:
        await ls.pull_configuration()
        ls.reanalyse_open_documents()


@server.feature(types.SHUTDOWN)
def shutdown(ls: GapServer, params: None) -> None:
    ls.analysis_pool.shutdown(wait=False, cancel_futures=True)


# -- configuration ---------------------------------------------------------------------------


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: GapServer, params: types.DidChangeConfigurationParams) -> None:
    if ls.session.client.configuration:
        await ls.pull_configuration()
    else:
        parsed, warnings = parse_editor_settings(params.settings, "didChangeConfiguration settings")
        ls.session.global_settings = parsed
        ls.warn(warnings)
    ls.reanalyse_open_documents()


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: GapServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.session.forget_project_configs()
    ls.reanalyse_open_documents()


# -- document sync ---------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: GapServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.documents[item.uri] = Document.open(item.uri, item.version, item.text, _path(item.uri), item.language_id)
    ls.analyses.opened(item.uri)
    ls.scheduler.schedule(item.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: GapServer, params: types.DidChangeTextDocumentParams) -> None:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return
    encoding = ls.encoding
    for change in params.content_changes:
        document.apply(change, encoding)
    document.version = params.text_document.version
    behaviour = ls.session.behaviour(document.path)
    if behaviour.run == "onType" and not ls.session.client.pull_diagnostics:
        ls.scheduler.schedule(document.uri, behaviour.debounce_ms / 1000)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
def did_save(ls: GapServer, params: types.DidSaveTextDocumentParams) -> None:
    if params.text_document.uri.endswith("/pyproject.toml"):
        ls.session.forget_project_configs()
        ls.reanalyse_open_documents()
    elif params.text_document.uri in ls.documents:
        ls.saved_versions[params.text_document.uri] = ls.documents[params.text_document.uri].version
        ls.analyses.saved(params.text_document.uri)  # a commit may have moved HEAD
        # Clients that neither watch files nor attach to TOML buffers (Neovim) never tell us that
        # pyproject.toml changed: look for it again on every save (a stat and, if changed, a read).
        ls.session.forget_project_configs()
        ls.scheduler.schedule(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: GapServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.documents.pop(uri, None)
    ls.saved_versions.pop(uri, None)
    ls.scheduler.forget(uri)
    ls.analyses.closed(uri)
    if not ls.session.client.pull_diagnostics:
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# -- diagnostics (pull) ------------------------------------------------------------------------


@server.feature(
    types.TEXT_DOCUMENT_DIAGNOSTIC,
    types.DiagnosticOptions(identifier="gap-ls", inter_file_dependencies=False, workspace_diagnostics=False),
)
async def document_diagnostic(ls: GapServer, params: types.DocumentDiagnosticParams) -> types.DocumentDiagnosticReport:
    uri = params.text_document.uri
    document = ls.documents.get(uri)
    if document is None:
        return types.RelatedFullDocumentDiagnosticReport(items=[])
    if ls.session.behaviour(document.path).run == "onSave":
        result = ls.latest(uri)
        saved_now = ls.saved_versions.get(uri) == document.version
        if result is None or (saved_now and result.version != document.version):
            result = await ls.scheduler.current(uri)  # the save's own analysis, not the one before it
    else:
        result = await ls.scheduler.current(uri)
    if result is None:
        return types.RelatedFullDocumentDiagnosticReport(items=[])
    result_id = _result_id(result)
    if params.previous_result_id == result_id:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
    return types.RelatedFullDocumentDiagnosticReport(items=ls.diagnostics_of(result), result_id=result_id)


def _result_id(result: Result) -> str:
    """Same findings for the same version -> same id, so the client can be told "unchanged"."""
    content = "|".join(f"{convert.finding_key(f)}:{f.severity.value}:{f.message}" for f in result.analysis.findings)
    return f"{result.version}:{hashlib.sha1(content.encode()).hexdigest()[:16]}"


# -- code actions ------------------------------------------------------------------------------


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix], resolve_provider=True),
)
async def code_action(ls: GapServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    result = ls.latest(uri)
    if result is None or uri not in ls.documents:
        return []
    by_key = {convert.finding_key(f): f for f in result.analysis.findings}
    actions: list[types.CodeAction] = []
    for diagnostic in params.context.diagnostics:
        data = convert.diagnostic_data(diagnostic)
        if diagnostic.source != convert.SOURCE or data is None or data.get("version") != result.version:
            continue
        finding = by_key.get(data["key"])
        if finding is None:
            continue
        for action in actions_for(finding):
            code_action = types.CodeAction(
                title=action.title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                is_preferred=action.preferred,
                data={"uri": uri, "version": result.version, "key": data["key"], "fix": action.kind},
            )
            if not ls.session.client.resolve_edits:
                code_action = await _with_edit(ls, code_action)
                if code_action.edit is None:
                    continue  # Eglot 1.9 and others without resolve: only offer what can be applied
            actions.append(code_action)
    return actions


@server.feature(types.CODE_ACTION_RESOLVE)
async def resolve_code_action(ls: GapServer, action: types.CodeAction) -> types.CodeAction:
    return await _with_edit(ls, action)


async def _with_edit(ls: GapServer, action: types.CodeAction) -> types.CodeAction:
    """Build the action's edit in a worker thread (parsing and compiling are not for the event loop)."""
    data = action.data if isinstance(action.data, dict) else {}
    result = ls.latest(str(data.get("uri")))
    if result is None or result.version != data.get("version"):
        return action  # the document moved on: no edit rather than a wrong one
    finding = next((f for f in result.analysis.findings if convert.finding_key(f) == data.get("key")), None)
    if finding is None:
        return action
    loop = asyncio.get_running_loop()
    try:
        analysis = result.analysis
        context = FixContext(analysis.units, analysis.summary) if analysis.summary is not None else None
        edits = await loop.run_in_executor(
            ls.analysis_pool, compute_edits, result.snapshot.text, finding, str(data.get("fix")), context
        )
    except FixNotApplicable as exc:
        log.info("fix %s for %s not applicable: %s", data.get("fix"), data.get("key"), exc)
        return action
    snapshot = result.snapshot
    action.edit = convert.workspace_edit(snapshot.uri, snapshot.version, list(snapshot.lines), edits, ls.encoding, ls.session.client)
    return action


# -- hover ---------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover_at(ls: GapServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    document = ls.documents.get(uri)
    result = ls.latest(uri)
    if document is None or result is None:
        return None
    markdown = ls.session.client.markdown_hover
    lines = list(result.snapshot.lines)
    position = server_position(lines, params.position, ls.encoding)
    flagged = [f for f in result.analysis.findings if _covers(f, position)]

    if flagged:
        value = hover.finding_hover(flagged, DOCS, markdown)
    else:
        value = _construct_or_code_hover(result, position, markdown)
    if value is None:
        return None
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    return types.Hover(contents=types.MarkupContent(kind=kind, value=value))


def _covers(finding: Finding, position) -> bool:
    return finding.span.start <= position <= finding.span.end


def _construct_or_code_hover(result: Result, position, markdown: bool) -> str | None:
    analysis = result.analysis
    line = result.snapshot.lines[position.line] if position.line < len(result.snapshot.lines) else ""
    for code in DOCS:
        column = line.find(code)
        if column != -1 and "gap: ignore" in line and column <= position.column <= column + len(code):
            return hover.rule_hover(DOCS[code], markdown)
    if analysis.summary is None:
        return None
    note = construct_note(analysis.unit_at(position.line), analysis.summary, position)
    return hover.note_hover(note, markdown) if note is not None else None


REVIEW_COMMAND = "gap-ls.reviewChanges"


@server.command(REVIEW_COMMAND)
async def review_changes(ls: GapServer, *args: Any) -> str:
    """The markdown review (`gap-ls review --format markdown`) of the working tree of the first
    workspace folder (or of the folder a given file or folder URI is in)."""
    target = next((a for a in args if isinstance(a, str)), None)
    folder = _path(target) if target else _path(ls.workspace.root_uri) if ls.workspace.root_uri else None
    if folder is None:
        raise JsonRpcException(message="gap-ls.reviewChanges: no workspace folder to review")
    loop = asyncio.get_running_loop()
    try:
        review = await loop.run_in_executor(ls.analysis_pool, collect, folder if folder.is_dir() else folder.parent,
                                            None, False, ())
    except git.GitError as exc:
        raise JsonRpcException(message=f"gap-ls.reviewChanges: {exc}") from exc
    return render_markdown(review)


def main_stdio() -> None:
    server.start_io()


def main_tcp(host: str, port: int) -> None:
    server.start_tcp(host, port)


__all__ = ["GapServer", "main_stdio", "main_tcp", "server"]
