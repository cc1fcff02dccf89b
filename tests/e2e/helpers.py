"""Test-side helpers for driving the real server: client capabilities, waiting for diagnostics,
applying the edits the server sends (in the client's position units)."""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

CLIENTS = ["visual-studio-code", "neovim@v0.11.0", "emacs", "modern-vscode"]


def capabilities_for(name: str) -> types.ClientCapabilities:
    if name != "modern-vscode":
        return client_capabilities(name)
    # A current VS Code: pull diagnostics, resolve support, markdown hover, configuration,
    # dynamic file watching, diagnostic refresh, UTF-16 positions.
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
        workspace=types.WorkspaceClientCapabilities(
            configuration=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True),
            diagnostics=types.DiagnosticWorkspaceClientCapabilities(refresh_support=True),
        ),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            diagnostic=types.DiagnosticClientCapabilities(related_document_support=False),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(
                related_information=True, version_support=True, code_description_support=True, data_support=True
            ),
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(value_set=[types.CodeActionKind.QuickFix])
                ),
                resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]),
                data_support=True,
                is_preferred_support=True,
            ),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText]),
        ),
    )


def encoding_of(client: LanguageClient, result: types.InitializeResult) -> str:
    return str(result.capabilities.position_encoding or types.PositionEncodingKind.Utf16)


def pulls(client: LanguageClient) -> bool:
    caps = client.capabilities
    return bool(caps and caps.text_document and caps.text_document.diagnostic)


def resolves(client: LanguageClient) -> bool:
    caps = client.capabilities
    action = caps.text_document.code_action if caps and caps.text_document else None
    return bool(action and action.resolve_support and "edit" in (action.resolve_support.properties or []))


async def diagnostics_for(client: LanguageClient, uri: str, version: int, timeout: float = 20) -> list[types.Diagnostic]:
    """The diagnostics the server gives for ``version`` of ``uri``, the way this client gets them."""
    if pulls(client):
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        return list(report.items)
    return await wait_for_publish(client, uri, version, timeout)


ANY = -1


async def wait_for_publish(client: LanguageClient, uri: str, version: int | None, timeout: float = 20) -> list[types.Diagnostic]:
    """The next publication for ``uri`` at ``version`` (None: an unversioned one, as on close;
    ANY: whatever comes next); others are skipped."""

    async def wait() -> list[types.Diagnostic]:
        while True:
            params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri and (version == ANY or params.version == version):
                return list(params.diagnostics)

    return await asyncio.wait_for(wait(), timeout)


def open_document(client: LanguageClient, uri: str, text: str, version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )


def change_document(client: LanguageClient, uri: str, version: int, changes: list) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=changes
        )
    )


def replace_all(text: str) -> types.TextDocumentContentChangeWholeDocument:
    return types.TextDocumentContentChangeWholeDocument(text=text)


def units(char: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(char.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return 1
    return 2 if ord(char) > 0xFFFF else 1


def to_units(line: str, column: int, encoding: str) -> int:
    return sum(units(c, encoding) for c in line[:column])


def from_units(line: str, character: int, encoding: str) -> int:
    consumed = 0
    for index, char in enumerate(line):
        if consumed >= character:
            return index
        consumed += units(char, encoding)
    return len(line)


def offset_of(text: str, position: types.Position, encoding: str) -> int:
    lines = text.splitlines(keepends=True)
    if position.line >= len(lines):
        return len(text)
    start = sum(len(line) for line in lines[: position.line])
    return start + from_units(lines[position.line].rstrip("\r\n"), position.character, encoding)


def apply_text_edits(text: str, edits: list[types.TextEdit], encoding: str) -> str:
    spans = sorted(((offset_of(text, e.range.start, encoding), offset_of(text, e.range.end, encoding), e.new_text) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def edits_of(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    if edit.document_changes:
        return [e for change in edit.document_changes if change.text_document.uri == uri for e in change.edits]
    return list((edit.changes or {}).get(uri, []))


def position_of(text: str, needle: str, encoding: str, after: int = 0) -> types.Position:
    """Client-unit position of the start of ``needle`` (searching from offset ``after``)."""
    offset = text.index(needle, after)
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=to_units(text[line_start:], offset - line_start, encoding))
