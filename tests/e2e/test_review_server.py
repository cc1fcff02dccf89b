"""The editor sees the change too: the buffer is compared with the file at git HEAD, dropped
guards are published as diagnostics (the HEAD line in the hover), and `gap-ls.reviewChanges`
returns the markdown review of the working tree."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.e2e.test_server import opened

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

COMMITTED = textwrap.dedent(
    """\
    import threading


    class Counter:
        def __init__(self):
            self._lock = threading.Lock()
            self.value = 0

        def bump(self):
            with self._lock:
                self.value += 1
    """
)


def commit(folder, name: str, text: str) -> None:
    (folder / name).write_text(text)
    for args in (["init", "-q"], ["config", "user.email", "dev@example.com"], ["config", "user.name", "dev"],
                 ["add", "."], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


async def test_a_lock_dropped_since_head_is_a_diagnostic_with_the_head_line_in_its_hover(vscode: LanguageClient, workspace):
    commit(workspace, "counter.py", COMMITTED)
    changed = COMMITTED.replace("        with self._lock:\n            self.value += 1\n", "        self.value += 1\n")
    uri, diagnostics = await opened(vscode, workspace, changed, "counter.py")
    dropped = [d for d in diagnostics if d.code == "GAP291"]
    assert [d.range.start.line for d in dropped] == [8]  # the `def bump` whose guard is gone
    hover = await vscode.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=dropped[0].range.start)
    )
    assert "at HEAD, line 10: `with self._lock:`" in hover.contents.value


async def test_review_changes_command_returns_the_markdown_review(vscode: LanguageClient, workspace):
    commit(workspace, "counter.py", COMMITTED)
    (workspace / "counter.py").write_text(COMMITTED.replace("        with self._lock:\n            self.value += 1\n",
                                                            "        self.value += 1\n"))
    markdown = await vscode.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gap-ls.reviewChanges", arguments=[])
    )
    assert markdown.startswith("## gap-ls review")
    assert "guard removed: `with self._lock`" in markdown and "GAP291" in markdown


async def test_outside_a_repository_nothing_is_compared(vscode: LanguageClient, workspace):
    changed = COMMITTED.replace("        with self._lock:\n            self.value += 1\n", "        self.value += 1\n")
    _, diagnostics = await opened(vscode, workspace, changed, "counter.py")
    assert all(d.code != "GAP291" for d in diagnostics)


async def test_a_dropped_guard_silenced_with_a_reason_is_not_published(vscode: LanguageClient, workspace):
    commit(workspace, "counter.py", COMMITTED)
    changed = COMMITTED.replace(
        "    def bump(self):\n        with self._lock:\n            self.value += 1\n",
        "    def bump(self):  # gap: ignore[GAP291] callers hold self._lock now\n        self.value += 1\n",
    )
    _, diagnostics = await opened(vscode, workspace, changed, "counter.py")
    assert all(d.code not in ("GAP291", "GAP001") for d in diagnostics)
