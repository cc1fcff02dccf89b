"""A real editor speaks to gap-ls: headless Neovim (Debian's `neovim` package) with its own LSP
client, started from the shipped editors/neovim/lsp/gap_ls.lua. Diagnostics arrive, hover
answers, a code action applies and the diagnostic goes away."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

NVIM = shutil.which("nvim")
SOURCE = textwrap.dedent(
    """\
    import logging

    log = logging.getLogger("café")


    def load(path):
        greeting = "héllo 😀"
        try:
            return read(path)
        except Exception:
            log.warning("could not load %s", path)
            return None
    """
)

pytestmark = pytest.mark.skipif(
    NVIM is None and not os.environ.get("GAP_LS_REQUIRE_EDITORS"),
    reason="nvim is not installed (.ci/run installs Debian's neovim and sets GAP_LS_REQUIRE_EDITORS)",
)


def test_neovim_lsp_client(tmp_path):
    assert NVIM is not None, "GAP_LS_REQUIRE_EDITORS is set but nvim is missing"
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    target = project / "service.py"
    target.write_text(SOURCE, encoding="utf-8")
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
        "GAP_LS_NVIM_CONFIG": str(ROOT / "editors" / "neovim" / "lsp" / "gap_ls.lua"),
        "GAP_LS_NVIM_FILE": str(target),
        "GAP_LS_NVIM_CMD": f"{sys.executable} -m gap_ls serve",
    }
    script = ROOT / "tests" / "editors" / "neovim_session.lua"
    completed = subprocess.run(
        [NVIM, "--headless", "--clean", "-n", "-i", "NONE", "-c", f"luafile {script}"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), completed.stderr
    report = json.loads(out.read_text())
    assert "error" not in report, report["error"]
    assert report["shipped_cmd"] == ["gap-ls", "serve"] and report["filetypes"] == ["python"]
    [diagnostic] = report["diagnostics"]
    assert diagnostic["code"] == "GAP102" and diagnostic["source"] == "gap-ls"
    assert (diagnostic["lnum"], diagnostic["col"]) == (9, 4)
    assert "Cannot be verified from this code" in report["hover"]
    assert report["action_titles"][0] == "Re-raise after handling"
    assert "raise  # TODO(gap-ls): was `return None`" in report["text_after_fix"]
    assert "log.exception(" in report["text_after_fix"]
    assert report["diagnostics_after_fix"] == 0
    versions = [e["version"] for e in report["events"] if e["kind"] == "publish" and e.get("version") is not None]
    assert versions == sorted(versions)
