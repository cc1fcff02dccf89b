"""Shared helpers: run the real `gap-ls` command line in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_gap_ls(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> Run:
    completed = subprocess.run(
        [sys.executable, "-m", "gap_ls", *args],
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        check=False,
        timeout=300,
    )
    return Run(completed.returncode, completed.stdout.decode("utf-8"), completed.stderr.decode("utf-8"))


@pytest.fixture
def gap_ls():
    return run_gap_ls
