"""A real editor speaks to gap-ls: headless Neovim (Debian's `neovim` package) with its own LSP
client, started from the shipped editors/neovim/lsp/gap_ls.lua. Diagnostics arrive, hover
answers, a code action applies and the diagnostic goes away.

Only Neovim 0.7.2 is packaged here, so the 0.8-0.10 module editors/neovim/gap_ls.lua is run with
the APIs 0.7 lacks (vim.fs, vim.lsp.start) stubbed: a STUBBED test, see neovim_session.lua."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

NVIM = shutil.which("nvim")
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
            log.warning("could not load %s", path)
            return None


    def start():
        s = "😀"; t = asyncio.create_task(work())
    """
)

pytestmark = pytest.mark.skipif(
    NVIM is None and not os.environ.get("GAP_LS_REQUIRE_EDITORS"),
    reason="nvim is not installed (.ci/run installs Debian's neovim and sets GAP_LS_REQUIRE_EDITORS)",
)


def _run_session(tmp_path: Path, target: Path, **extra_env: str) -> dict:
    """Run neovim_session.lua in a headless Neovim with a private HOME; return its report."""
    out = tmp_path / "report.json"
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "GAP_LS_NVIM_OUT": str(out),
        "GAP_LS_NVIM_FILE": str(target),
        **extra_env,
    }
    script = ROOT / "tests" / "editors" / "neovim_session.lua"
    try:
        completed = subprocess.run(
            [NVIM, "--headless", "--clean", "-n", "-i", "NONE", "-c", f"luafile {script}"],
            env=env,
            cwd=target.parent,
            capture_output=True,
            text=True,
            timeout=90,  # the session's own waits add up to 50 s at most
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed nvim
        pytest.fail(f"nvim did not quit within 90 s; stderr:\n{exc.stderr}")
    assert out.exists(), completed.stderr
    report = json.loads(out.read_text())
    assert "error" not in report, report["error"]
    return report


def test_neovim_lsp_client(tmp_path):
    assert NVIM is not None, "GAP_LS_REQUIRE_EDITORS is set but nvim is missing"
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    target = project / "service.py"
    target.write_text(SOURCE, encoding="utf-8")
    report = _run_session(
        tmp_path,
        target,
        GAP_LS_NVIM_CONFIG=str(ROOT / "editors" / "neovim" / "lsp" / "gap_ls.lua"),
        GAP_LS_NVIM_CMD=f"{sys.executable} -m gap_ls serve",
    )
    assert report["shipped_cmd"] == ["gap-ls", "serve"] and report["filetypes"] == ["python"]
    diagnostic, task = sorted(report["diagnostics"], key=lambda d: d["lnum"])
    assert diagnostic["code"] == "GAP102" and diagnostic["source"] == "gap-ls"
    assert (diagnostic["lnum"], diagnostic["col"]) == (10, 4)
    # Neovim 0.7 counts UTF-16 units: the range lands on the call only if gap-ls counted the 😀 as 2.
    assert task["code"] == "GAP104" and task["covers"] == "asyncio.create_task(work())"
    assert "Cannot be verified from this code" in report["hover"]
    assert report["action_titles"][0] == "Re-raise after handling"
    assert "raise  # TODO(gap-ls): was `return None`" in report["text_after_fix"]
    assert "log.exception(" in report["text_after_fix"]
    assert [d["code"] for d in report["diagnostics_after_fix"]] == ["GAP104"]
    versions = [e["version"] for e in report["events"] if e["kind"] == "publish" and e.get("version") is not None]
    assert versions == sorted(versions)


def test_neovim_setup_module_stubbed(tmp_path):
    """STUBBED: editors/neovim/gap_ls.lua (for Neovim 0.8-0.10) in Neovim 0.7.2, with vim.fs and
    vim.lsp.start stubbed. Checks that setup() calls vim.lsp.start on FileType python with the shipped
    table merged with its options and the root found as Neovim 0.11 finds it; the stub then starts a
    real client with those arguments, so the diagnostics' severity shows the settings reached gap-ls."""
    assert NVIM is not None, "GAP_LS_REQUIRE_EDITORS is set but nvim is missing"
    gap_ls_bin = Path(sys.executable).parent
    assert (gap_ls_bin / "gap-ls").exists(), f"no gap-ls command in {gap_ls_bin}: pip install -e . first"
    project = tmp_path / "project"
    package = project / "src" / "pkg"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (project / "src" / ".git").mkdir()  # nearer than pyproject.toml, but pyproject.toml is the first marker
    target = package / "service.py"
    target.write_text(SOURCE, encoding="utf-8")
    report = _run_session(
        tmp_path,
        target,
        GAP_LS_NVIM_MODE="setup",
        GAP_LS_NVIM_EDITOR_DIR=str(ROOT / "editors" / "neovim"),
        PATH=f"{gap_ls_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # the shipped cmd runs `gap-ls serve`
    )
    assert report["filetype"] == "python"
    [call] = report["start_calls"]
    config = call["config"]
    assert config["name"] == "gap_ls" and config["cmd"] == ["gap-ls", "serve"]
    assert config["root_dir"] == str(project)
    gap = {"run": "onType", "debounce": 100, "severity": {"GAP102": "error"}}
    assert config["settings"] == {"gap": gap} and config["init_options"] == gap
    assert call["opts"]["bufnr"] >= 1
    diagnostic = next(d for d in report["diagnostics"] if d["code"] == "GAP102")
    assert diagnostic["severity"] == 1  # 1 = ERROR, from the settings given to setup()
