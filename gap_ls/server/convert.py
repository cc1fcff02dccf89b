"""Core findings and edits <-> LSP types. Positions go through the document's encoding.

No analysis happens here: a Finding becomes a Diagnostic (with the rule
code, a link to its documentation, the other end of the pattern as related
information, and a small `data` payload that names the finding), and core
TextEdits become a versioned WorkspaceEdit.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from gap_ls.core.model import Finding, Severity, TextEdit
from gap_ls.core.ruledocs import doc_url
from gap_ls.server.documents import Encoding, client_range
from gap_ls.server.session import ClientFeatures

SOURCE = "gap-ls"
SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}


def finding_key(finding: Finding) -> str:
    """Names a finding within one version of a document."""
    span = finding.span
    return f"{finding.code}:{span.start.line}:{span.start.column}:{span.end.line}:{span.end.column}"


def to_diagnostic(
    finding: Finding, uri: str, lines: list[str], encoding: Encoding, client: ClientFeatures, version: int
) -> types.Diagnostic:
    related = None
    if client.related_information and finding.related:
        related = [
            types.DiagnosticRelatedInformation(
                location=types.Location(uri=uri, range=client_range(lines, r.span, encoding)),
                message=r.message,
            )
            for r in finding.related
        ]
    return types.Diagnostic(
        range=client_range(lines, finding.span, encoding),
        message=finding.message,
        severity=SEVERITY[finding.severity],
        code=finding.code,
        code_description=types.CodeDescription(href=doc_url(finding.code)) if client.code_description else None,
        source=SOURCE,
        related_information=related,
        data={"key": finding_key(finding), "version": version},
    )


def workspace_edit(
    uri: str, version: int, lines: list[str], edits: list[TextEdit], encoding: Encoding, client: ClientFeatures
) -> types.WorkspaceEdit:
    """Edits for one version of a document; versioned so a client rejects them once the text moved on."""
    text_edits = [types.TextEdit(range=client_range(lines, e.span, encoding), new_text=e.new_text) for e in edits]
    if client.versioned_edits:
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=identifier, edits=text_edits)])
    return types.WorkspaceEdit(changes={uri: text_edits})


def diagnostic_data(diagnostic: types.Diagnostic) -> dict[str, Any] | None:
    data = diagnostic.data
    if isinstance(data, dict) and isinstance(data.get("key"), str):
        return data
    return None
