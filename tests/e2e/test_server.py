"""The language server end to end: a real `gap-ls serve` over stdio, driven as several editors."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from gap_ls.core.engine import analyze
from tests.e2e.helpers import (
    apply_text_edits,
    change_document,
    diagnostics_for,
    edits_of,
    encoding_of,
    open_document,
    position_of,
    pulls,
    replace_all,
    resolves,
    wait_for_publish,
)

# Non-ASCII text on the line before and on the line of the flagged construct: an accented name,
# an emoji in a string, a character outside the Basic Multilingual Plane.
SOURCE = textwrap.dedent(
    """\
    import logging

    log = logging.getLogger("café")


    def load(path):
        greeting = "héllo 😀"  # the line before the flagged one has non-ASCII text
        try:
            return read(path)
        except Exception: log.warning("échec 😀 %s", path); return None
    """
)
FLAGGED = 'except Exception'


def uri_in(workspace, name: str = "module.py") -> str:
    path = workspace / name
    return path.as_uri()


async def opened(client: LanguageClient, workspace, text: str = SOURCE, name: str = "module.py"):
    uri = uri_in(workspace, name)
    (workspace / name).write_text(text, encoding="utf-8")
    waiter = None if pulls(client) else asyncio.ensure_future(wait_for_publish(client, uri, 1))
    open_document(client, uri, text)
    diagnostics = await waiter if waiter is not None else await diagnostics_for(client, uri, 1)
    return uri, diagnostics


async def pull_until_clear(client: LanguageClient, uri: str, rounds: int = 50):
    """Pull diagnostics until they are empty (a re-analysis is under way), at most ``rounds`` times."""
    for _ in range(rounds):
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        if not report.items:
            break
        await asyncio.sleep(0.1)
    return report


async def test_open_publishes_diagnostics_at_the_right_position(client: LanguageClient, workspace):
    uri, diagnostics = await opened(client, workspace)
    [diagnostic] = diagnostics
    encoding = encoding_of(client, client.init_result)
    start = position_of(SOURCE, FLAGGED, encoding)
    assert diagnostic.range.start == start
    assert diagnostic.range.end == types.Position(line=start.line, character=start.character + len(FLAGGED))
    assert diagnostic.code == "GAP102" and diagnostic.source == "gap-ls"
    assert diagnostic.severity == types.DiagnosticSeverity.Warning
    assert diagnostic.data["version"] == 1


async def test_positions_follow_the_negotiated_encoding(client: LanguageClient, workspace):
    text = 'x = "😀😀"; y = "é"\ndef f():\n    s = "😀"; t = asyncio.create_task(work())\n'
    uri, diagnostics = await opened(client, workspace, text, "enc.py")
    [diagnostic] = diagnostics
    encoding = encoding_of(client, client.init_result)
    assert diagnostic.range.start == position_of(text, "asyncio.create_task", encoding)
    expected = {"utf-8": 20, "utf-16": 18, "utf-32": 17}[encoding]  # the emoji is 4, 2 or 1 units
    assert diagnostic.range.start.character == expected


async def test_edit_updates_diagnostics_for_the_new_version(client: LanguageClient, workspace):
    uri, _ = await opened(client, workspace)
    fixed = SOURCE.replace("return None", "raise")
    waiter = None if pulls(client) else asyncio.ensure_future(wait_for_publish(client, uri, 2))
    change_document(client, uri, 2, [replace_all(fixed)])
    diagnostics = await waiter if waiter is not None else await diagnostics_for(client, uri, 2)
    assert diagnostics == []


async def test_incremental_edits_are_applied_like_the_client(client: LanguageClient, workspace):
    uri, _ = await opened(client, workspace)
    encoding = encoding_of(client, client.init_result)
    start = position_of(SOURCE, "return None", encoding)
    end = types.Position(line=start.line, character=start.character + len("return None"))
    edit = types.TextDocumentContentChangePartial(range=types.Range(start=start, end=end), text="raise")
    waiter = None if pulls(client) else asyncio.ensure_future(wait_for_publish(client, uri, 2))
    change_document(client, uri, 2, [edit])
    diagnostics = await waiter if waiter is not None else await diagnostics_for(client, uri, 2)
    assert diagnostics == []


async def test_hover_says_what_cannot_be_verified(client: LanguageClient, workspace):
    uri, [diagnostic] = await opened(client, workspace)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diagnostic.range.start)
    )
    value = hover.contents.value
    assert "GAP102" in value and "Cannot be verified from this code" in value
    assert "whether every caller treats `None` as a failure" in value
    assert "Checked" in value and "logs at WARNING without the traceback" in value


async def test_each_code_action_applies_and_clears_the_diagnostic(client: LanguageClient, workspace):
    uri, [diagnostic] = await opened(client, workspace)
    encoding = encoding_of(client, client.init_result)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    titles = [a.title for a in actions]
    assert titles[0] == "Re-raise after handling" and actions[0].is_preferred
    assert titles[-1] == "Suppress GAP102 on this line (with a reason)"
    for action in actions:
        if action.edit is None:
            assert resolves(client)
            action = await client.code_action_resolve_async(action)
        fixed = apply_text_edits(SOURCE, edits_of(action.edit, uri), encoding)
        compile(fixed, "fixed.py", "exec")
        assert "TODO(gap-ls)" in fixed
        assert not [f for f in analyze(fixed).findings if f.code == "GAP102"], action.title


async def test_reanalysis_after_applying_a_fix_has_no_diagnostic_and_a_second_apply_is_refused(vscode: LanguageClient, workspace):
    client = vscode
    uri, [diagnostic] = await opened(client, workspace)
    [action, *_] = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    resolved = await client.code_action_resolve_async(action)
    [change] = resolved.edit.document_changes
    assert change.text_document.version == 1  # a client rejects it once the document moved on
    fixed = apply_text_edits(SOURCE, change.edits, "utf-16")
    change_document(client, uri, 2, [replace_all(fixed)])
    assert await diagnostics_for(client, uri, 2) == []
    # The old action, resolved again, no longer carries an edit: the document moved on.
    again = await client.code_action_resolve_async(action)
    assert again.edit is None


async def test_clients_without_resolve_get_edits_eagerly(client: LanguageClient, workspace):
    uri, [diagnostic] = await opened(client, workspace)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    if resolves(client):
        assert all(a.edit is None and a.data for a in actions)
    else:
        assert actions and all(a.edit is not None for a in actions)


async def test_syntax_error_mid_edit_then_recovery(pusher: LanguageClient, workspace):
    client = pusher
    uri, _ = await opened(client, workspace)
    broken = SOURCE.replace("def load(path):", "def load(path")
    waiter = asyncio.ensure_future(wait_for_publish(client, uri, 2))
    change_document(client, uri, 2, [replace_all(broken)])
    diagnostics = await waiter
    # The broken function's last finding stays (stale) while it does not parse.
    assert [d.code for d in diagnostics] == ["GAP000", "GAP102"]
    assert diagnostics[0].severity == types.DiagnosticSeverity.Error
    waiter = asyncio.ensure_future(wait_for_publish(client, uri, 3))
    change_document(client, uri, 3, [replace_all(SOURCE)])
    assert [d.code for d in await waiter] == ["GAP102"]


async def test_a_burst_of_changes_publishes_only_the_last_version(pusher: LanguageClient, workspace):
    client = pusher
    uri, _ = await opened(client, workspace)
    seen: list[int] = []

    async def record():
        while True:
            params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri:
                seen.append(params.version)
                if params.version == 31:
                    return

    recorder = asyncio.ensure_future(record())
    for version in range(2, 32):
        text = SOURCE + f"\nVALUE = {version}\n"
        change_document(client, uri, version, [replace_all(text)])
    await asyncio.wait_for(recorder, 20)
    assert seen[-1] == 31
    assert len(seen) <= 3
    assert seen == sorted(seen)  # never an older version after a newer one


async def test_close_clears_diagnostics(pusher: LanguageClient, workspace):
    client = pusher
    uri, diagnostics = await opened(client, workspace)
    assert diagnostics
    waiter = asyncio.ensure_future(wait_for_publish(client, uri, None))
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await waiter == []


async def test_pull_diagnostics_and_unchanged_reports(vscode: LanguageClient, workspace):
    client = vscode
    uri, diagnostics = await opened(client, workspace)
    assert [d.code for d in diagnostics] == ["GAP102"]
    first = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    second = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=first.result_id)
    )
    assert second.kind == "unchanged" and second.result_id == first.result_id
    assert first.items[0].code_description.href.endswith("/GAP102.md")


async def test_requests_for_unknown_documents_are_empty(vscode: LanguageClient, workspace):
    client = vscode
    uri = (workspace / "never-opened.py").as_uri()
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert list(report.items) == []
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0))
    )
    assert hover is None
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert list(actions) == []


async def test_configuration_change_applies(vscode: LanguageClient, workspace):
    client = vscode
    uri, diagnostics = await opened(client, workspace)
    assert diagnostics
    client.set_configuration({"ignore": ["GAP102"]}, section="gap", scope_uri=workspace.as_uri())
    client.set_configuration({"ignore": ["GAP102"]}, section="gap")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    report = await pull_until_clear(client, uri)
    assert list(report.items) == []
    assert client.diagnostic_refresh_count >= 1


async def test_bad_settings_warn_and_keep_serving(vscode: LanguageClient, workspace):
    client = vscode
    client.set_configuration({"selekt": ["GAP1"], "debounce": "soon"}, section="gap", scope_uri=workspace.as_uri())
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    uri, diagnostics = await opened(client, workspace)
    assert [d.code for d in diagnostics] == ["GAP102"]
    for _ in range(50):
        messages = " ".join(m.message for m in client.messages)
        if "selekt" in messages:
            break
        await asyncio.sleep(0.1)
    assert "unknown key 'selekt'" in messages and "`debounce` must be a number" in messages
    assert all(m.type == types.MessageType.Warning for m in client.messages)


async def test_pyproject_change_reanalyses(vscode: LanguageClient, workspace):
    client = vscode
    uri, diagnostics = await opened(client, workspace)
    assert diagnostics and client.registrations and client.registrations[0].method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
    (workspace / "pyproject.toml").write_text('[tool.gap-ls]\nignore = ["GAP102"]\n')
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=(workspace / "pyproject.toml").as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    report = await pull_until_clear(client, uri)
    assert list(report.items) == []


async def test_hover_over_a_lock_without_a_finding(vscode: LanguageClient, workspace):
    client = vscode
    text = "import threading\n_lock = threading.Lock()\n\ndef bump(counter):\n    with _lock:\n        counter.value += 1\n"
    uri, diagnostics = await opened(client, workspace, text, "lock.py")
    assert diagnostics == []
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position_of(text, "_lock:", "utf-16"))
    )
    assert "does not serialise them" in hover.contents.value and "worker processes" in hover.contents.value


@pytest.mark.parametrize("setting", [{"run": "onSave"}])
async def test_on_save_mode(pusher: LanguageClient, workspace, setting):
    client = pusher
    client.set_configuration(setting, section="gap", scope_uri=workspace.as_uri())
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"gap": setting}))
    await asyncio.sleep(0.3)  # the server pulls the new settings
    uri, diagnostics = await opened(client, workspace)
    assert diagnostics
    change_document(client, uri, 2, [replace_all(SOURCE.replace("return None", "raise"))])
    waiter = asyncio.ensure_future(wait_for_publish(client, uri, 2, timeout=5))
    await asyncio.sleep(0.6)
    assert not waiter.done()  # no diagnostics while typing in onSave mode
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await waiter == []


async def test_on_save_mode_pull_right_after_a_save_gets_the_saved_version(vscode: LanguageClient, workspace):
    """A pull client (VS Code) asks for diagnostics right after didSave: it gets the analysis of
    what was saved, not the one from before the save."""
    client = vscode
    setting = {"run": "onSave"}
    client.set_configuration(setting, section="gap", scope_uri=workspace.as_uri())
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"gap": setting}))
    await asyncio.sleep(0.3)  # the server pulls the new settings
    uri, diagnostics = await opened(client, workspace)
    assert [d.code for d in diagnostics] == ["GAP102"]
    change_document(client, uri, 2, [replace_all(SOURCE.replace("return None", "raise"))])
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert list(report.items) == []


async def test_a_failing_request_is_logged_and_the_server_keeps_serving(vscode: LanguageClient, workspace):
    client = vscode
    uri, diagnostics = await opened(client, workspace)
    # A request the typed client cannot even express: hover without a document, written raw.
    body = json.dumps({"jsonrpc": "2.0", "id": "broken-1", "method": "textDocument/hover", "params": {"position": {"line": 0}}})
    client._server.stdin.write(f"Content-Length: {len(body.encode())}\r\n\r\n{body}".encode())
    for _ in range(50):
        if any("gap-ls" in m.message and m.type == types.MessageType.Error for m in client.log_messages):
            break
        await asyncio.sleep(0.1)
    assert any("gap-ls" in m.message and m.type == types.MessageType.Error for m in client.log_messages)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diagnostics[0].range.start)
    )
    assert "GAP102" in hover.contents.value
    assert not client.messages  # no error dialog popped up


async def test_shutdown_and_exit_end_the_process_promptly(vscode: LanguageClient, workspace):
    client = vscode
    await opened(client, workspace)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.shutdown_session()
    client.capabilities = None  # the fixture's own shutdown has nothing left to do
    await asyncio.wait_for(client._server.wait(), 10)
    assert client._server.returncode == 0
    assert loop.time() - started < 10


RACE_SOURCE = textwrap.dedent(
    """\
    import threading

    from flask import Flask

    app = Flask(__name__)
    VIEW_HITS = {}


    @app.route("/products/<sku>")
    def product(sku):
        VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1
        return {"sku": sku}
    """
)


async def test_race_diagnostic_hover_and_lock_fix(client: LanguageClient, workspace):
    """GAP201 end to end in every editor profile: the diagnostic, its hover (what cannot be
    verified: the worker model), and *Guard with a lock* applied through the server."""
    uri, diagnostics = await opened(client, workspace, RACE_SOURCE, "views.py")
    [diagnostic] = diagnostics
    encoding = encoding_of(client, client.init_result)
    assert diagnostic.code == "GAP201"
    assert diagnostic.range.start == position_of(RACE_SOURCE, "VIEW_HITS[sku] =", encoding)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diagnostic.range.start)
    )
    value = hover.contents.value
    assert "GAP201" in value and "whether this really runs concurrently in production" in value
    assert "Flask request handler" in value  # how gap-ls knows it runs on several threads
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    [guard] = [a for a in actions if a.title == "Guard with a lock"]
    assert guard.is_preferred
    if guard.edit is None:
        assert resolves(client)
        guard = await client.code_action_resolve_async(guard)
    fixed = apply_text_edits(RACE_SOURCE, edits_of(guard.edit, uri), encoding)
    assert "_view_hits_lock = threading.Lock()" in fixed
    assert "    with _view_hits_lock:  # TODO(gap-ls)" in fixed
    assert "        VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1" in fixed
    waiter = None if pulls(client) else asyncio.ensure_future(wait_for_publish(client, uri, 2))
    change_document(client, uri, 2, [replace_all(fixed)])
    diagnostics = await waiter if waiter is not None else await diagnostics_for(client, uri, 2)
    assert diagnostics == []


async def test_hover_over_a_lock_says_what_it_cannot_serialise(vscode: LanguageClient, workspace):
    client = vscode
    text = RACE_SOURCE.replace("VIEW_HITS = {}\n", "VIEW_HITS = {}\n_hits_lock = threading.Lock()\n").replace(
        "    VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1\n",
        "    with _hits_lock:\n        VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1\n",
    )
    uri, diagnostics = await opened(client, workspace, text, "locked.py")
    assert diagnostics == []
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position_of(text, "_hits_lock:", "utf-16"))
    )
    assert "several worker processes" in hover.contents.value


IDEMPOTENCY_SOURCE = textwrap.dedent(
    """\
    import stripe
    from tenacity import retry, stop_after_attempt


    @retry(stop=stop_after_attempt(3))
    def charge(order):
        return stripe.PaymentIntent.create(amount=order.total_cents, currency="eur")
    """
)


async def test_idempotency_diagnostic_hover_and_key_fix(client: LanguageClient, workspace):
    """GAP301 end to end in every editor profile: the diagnostic pointing at the retry, its hover
    (what cannot be verified: whether the service deduplicates), and *Add an idempotency key*
    applied through the server, with the key derived from the order, outside the retry."""
    uri, diagnostics = await opened(client, workspace, IDEMPOTENCY_SOURCE, "billing.py")
    [diagnostic] = diagnostics
    encoding = encoding_of(client, client.init_result)
    assert diagnostic.code == "GAP301"
    assert diagnostic.range.start == position_of(IDEMPOTENCY_SOURCE, "stripe.PaymentIntent.create(", encoding)
    [related] = diagnostic.related_information or [None]
    if related is not None:  # clients that do not advertise relatedInformation get none
        assert "runs the scope again" in related.message
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diagnostic.range.start)
    )
    value = hover.contents.value
    assert "GAP301" in value and "whether the remote service deduplicates this request by itself" in value
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    [add_key] = [a for a in actions if a.title.startswith("Add an idempotency key")]
    assert add_key.is_preferred
    if add_key.edit is None:
        assert resolves(client)
        add_key = await client.code_action_resolve_async(add_key)
    fixed = apply_text_edits(IDEMPOTENCY_SOURCE, edits_of(add_key.edit, uri), encoding)
    assert 'currency="eur", idempotency_key=f"payment-{order.id}")  # TODO(gap-ls)' in fixed
    waiter = None if pulls(client) else asyncio.ensure_future(wait_for_publish(client, uri, 2))
    change_document(client, uri, 2, [replace_all(fixed)])
    diagnostics = await waiter if waiter is not None else await diagnostics_for(client, uri, 2)
    assert diagnostics == []


async def test_saving_a_python_file_picks_up_a_new_pyproject_table(pusher: LanguageClient, workspace):
    """Clients without file watching (Neovim) never report pyproject.toml changes: a save of the
    Python buffer, even without edits, re-reads it and re-analyses when the settings changed."""
    uri, diagnostics = await opened(pusher, workspace)
    assert [d.code for d in diagnostics] == ["GAP102"]
    (workspace / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.gap-ls]\nignore = ["GAP102"]\n')

    async def cleared() -> bool:
        # Publications of version 1 from before the save (the start-up configuration pull
        # re-analyses too) may still arrive: wait for the one without the ignored finding.
        while await wait_for_publish(pusher, uri, 1):
            pass
        return True

    waiter = asyncio.ensure_future(cleared())
    pusher.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await asyncio.wait_for(waiter, 20)
