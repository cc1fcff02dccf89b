"""A real editor speaks to gap-ls: Emacs 28 with Debian's Eglot 1.9, configured by the shipped
editors/emacs/gap-ls.el. Flymake shows the diagnostic at the severity the workspace
configuration asked for, hover answers, an edit of pyproject.toml is seen through Eglot's file
watching, the quick fix arrives with its edit (Eglot 1.9 has no codeAction/resolve), applies, and
the diagnostic goes away.

Emacs runs as `emacs -Q --fg-daemon` (in --batch, idle timers never fire and Eglot never sends
didChange); tests/editors/emacs_session.el drives it and writes a JSON report."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

EMACS = shutil.which("emacs")
REQUIRED = bool(os.environ.get("GAP_LS_REQUIRE_EDITORS"))
SESSION_TIMEOUT = 40  # seconds, enforced inside Emacs; the daemon is killed 15 s later at the latest
SOURCE = textwrap.dedent(
    """\
    import asyncio
    import logging

    log = logging.getLogger("café")


    def load(path):
        greeting = "héllo 😀"
        try:
            return read(path)
        except Exception:
            log.warning("could not load 😀 %s", path)
            return None


    def start():
        s = "😀"; t = asyncio.create_task(work())
    """
)
FIXED = SOURCE.replace(
    '        log.warning("could not load 😀 %s", path)\n        return None\n',
    "        # TODO(gap-ls): logged with `exception` (was `warning`) to keep the traceback\n"
    '        log.exception("could not load 😀 %s", path)\n'
    "        raise  # TODO(gap-ls): was `return None`; re-raised so the caller sees the failure\n",
)

pytestmark = pytest.mark.skipif(
    EMACS is None and not REQUIRED,
    reason="emacs is not installed (Debian: apt-get install emacs-nox elpa-eglot; CI sets GAP_LS_REQUIRE_EDITORS)",
)


def _gap_ls_bin() -> Path:
    """The folder of the gap-ls command installed next to this Python (the shipped entry runs `gap-ls serve`)."""
    folder = Path(sys.executable).parent
    if not (folder / "gap-ls").exists():
        pytest.fail(f"no gap-ls command in {folder}: install the project (pip install -e .) into this environment")
    return folder


def _kill(process: subprocess.Popen, pid: int | None = None) -> None:
    """The daemon's process group, then the server if it outlived Emacs."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def test_emacs_eglot_client(tmp_path):
    assert EMACS is not None, "GAP_LS_REQUIRE_EDITORS is set but emacs is missing"
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    target = project / "service.py"
    target.write_text(SOURCE, encoding="utf-8")
    out = tmp_path / "report.json"
    home = tmp_path / "home"
    home.mkdir()
    gap_ls_bin = _gap_ls_bin()
    # A short private folder for the daemon's socket (a Unix socket path is limited to ~107 bytes).
    runtime = Path(tempfile.mkdtemp(prefix="gapls-emacs-"))
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_RUNTIME_DIR": str(runtime),
        "PATH": f"{gap_ls_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # the shipped entry runs `gap-ls serve`
        "GAP_LS_EMACS_OUT": str(out),
        "GAP_LS_EMACS_CONFIG": str(ROOT / "editors" / "emacs" / "gap-ls.el"),
        "GAP_LS_EMACS_FILE": str(target),
        "GAP_LS_EMACS_ROOT": str(project),
        "GAP_LS_EMACS_TIMEOUT": str(SESSION_TIMEOUT),
    }
    env.pop("EMACSLOADPATH", None)
    session = ROOT / "tests" / "editors" / "emacs_session.el"
    log = tmp_path / "emacs.log"
    report: dict = {}
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [EMACS, "-Q", f"--fg-daemon=gapls-{os.getpid()}", "-l", str(session)],
            env=env,
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                process.wait(timeout=SESSION_TIMEOUT + 15)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"Emacs did not exit within {SESSION_TIMEOUT + 15} s; its output:\n{log.read_text(errors='replace')}"
                )
            if out.exists():
                report = json.loads(out.read_text(encoding="utf-8"))
        finally:
            _kill(process, report.get("server_pid"))
            shutil.rmtree(runtime, ignore_errors=True)

    emacs_output = log.read_text(errors="replace")
    assert out.exists(), f"Emacs exited with {process.returncode} and wrote no report:\n{emacs_output}"
    if "Eglot is not installed" in report.get("error", "") and not REQUIRED:
        pytest.skip("Debian's elpa-eglot is not installed")
    assert "error" not in report, json.dumps(report, indent=2, ensure_ascii=False)
    assert process.returncode == 0, emacs_output

    # The shipped configuration is the one in use.
    assert report["server_program"] == ["gap-ls", "serve"]
    assert report["workspace_configuration"]["gap"]["severity"] == {"GAP102": "error"}

    diagnostic, task = sorted(report["diagnostics"], key=lambda d: d["line"])
    assert diagnostic["code"] == "GAP102" and diagnostic["source"] == "gap-ls"
    assert (diagnostic["line"], diagnostic["column"]) == (11, 4)
    # Severity 1 only because workspace/configuration returned gap-ls-settings (GAP102 = "error").
    assert diagnostic["lsp_severity"] == 1 and diagnostic["flymake_type"] == "eglot-error"
    # Eglot 1.9 counts UTF-16 units: the range lands on the call only if gap-ls counted the 😀 as 2.
    assert task["code"] == "GAP104" and task["covers"] == "asyncio.create_task(work())"

    # Eglot 1.9 under -Q offers only plain text hover (no markdown-mode).
    assert report["hover_kind"] == "plaintext"
    assert "Cannot be verified from this code" in report["hover"]
    assert "whether every caller treats `None` as a failure" in report["hover"]

    # Eglot watches pyproject.toml for gap-ls: editing it re-analyses without touching the buffer.
    assert report["ignored_at"] >= report["pyproject_written_at"]
    assert report["back_at"] >= report["pyproject_restored_at"]

    titles = [a["title"] for a in report["actions"]]
    assert titles[0] == "Re-raise after handling", titles
    if not report["client_resolve_support"]:  # Eglot 1.9: without resolve, every action carries its edit
        assert all(a["has_edit"] for a in report["actions"]), report["actions"]
    assert [a["preferred"] for a in report["actions"]][:2] == [True, False]
    text = report["text_after_fix"]
    assert "raise" in text and "TODO(gap-ls)" in text
    assert text == FIXED, text

    assert [d["code"] for d in report["diagnostics_after_fix"]] == ["GAP104"]
    publishes = [e for e in report["events"] if e["kind"] == "publish"]
    assert publishes[-1]["codes"] == ["GAP104"]
    versions = [e["version"] for e in publishes if e.get("version") is not None]
    assert versions == sorted(versions)
