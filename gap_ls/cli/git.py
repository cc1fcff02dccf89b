"""The few git questions `gap-ls review` asks, through the `git` command with fixed argument shapes.

Nothing from the repository is executed: hooks do not run for these read-only commands, and
`-c core.fsmonitor=false` / `--no-ext-diff` / `--no-textconv` keep configured helpers out.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SAFE = ("-c", "core.fsmonitor=false", "-c", "core.quotepath=off")


class GitError(RuntimeError):
    """git cannot answer: not a repository, an unknown revision, git missing."""


def _git(root: Path, *args: str, check: bool = True) -> str:
    try:
        completed = subprocess.run(
            ["git", *SAFE, "-C", str(root), *args], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git could not run: {exc}") from exc
    if check and completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {args[0]} failed")
    return completed.stdout.decode("utf-8", "surrogateescape")


def toplevel(start: Path) -> Path:
    """The work tree that holds ``start``; GitError outside one."""
    return Path(_git(start, "rev-parse", "--show-toplevel").strip())


def resolve(root: Path, revision: str) -> str:
    """The commit a revision names; GitError for an unknown one."""
    if revision.startswith("-"):
        raise GitError(f"not a revision: {revision!r}")
    found = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}", check=False)
    if not found.strip():
        raise GitError(f"unknown revision {revision!r} (no such commit in {root})")
    return found.strip()


@dataclass(frozen=True)
class Changed:
    path: str  # relative to the work tree, POSIX
    base_path: str | None  # the path in the base (renames), None for a new file
    deleted: bool = False


def changed_files(root: Path, base: str | None, staged: bool) -> list[Changed]:
    """Changed Python files: against ``base`` (working tree, or the index with ``staged``), plus
    untracked files when the working tree is reviewed."""
    args = ["diff", "--no-ext-diff", "--no-textconv", "--name-status", "-z", "-M", "--diff-filter=ACDMR"]
    args += ["--cached", base or "HEAD"] if staged else [base or "HEAD"]
    fields = _git(root, *args, "--").split("\0")
    found: list[Changed] = []
    index = 0
    while index < len(fields) - 1:
        status = fields[index]
        if status.startswith(("R", "C")):
            old, new = fields[index + 1], fields[index + 2]
            index += 3
            found.append(Changed(new, old if status.startswith("R") else None))
            continue
        path = fields[index + 1]
        index += 2
        if status == "A":
            found.append(Changed(path, None))
        elif status == "D":
            found.append(Changed(path, path, deleted=True))
        else:
            found.append(Changed(path, path))
    if not staged:
        for path in _git(root, "ls-files", "--others", "--exclude-standard", "-z").split("\0"):
            if path:
                found.append(Changed(path, None))
    return [c for c in found if c.path.endswith(".py")]


def show(root: Path, revision: str, path: str) -> str | None:
    """The file at ``revision`` (":" for the index); None when it does not exist there."""
    spec = f":{path}" if revision == ":" else f"{revision}:{path}"
    try:
        raw = _git(root, "show", "--no-textconv", spec)
    except GitError:
        return None
    return raw


def head_text(path: Path) -> str | None:
    """The file's text at HEAD, for the editor; None outside a repository or for a new file."""
    try:
        root = toplevel(path.parent)
        relative = path.resolve().relative_to(root.resolve()).as_posix()
    except (GitError, ValueError, OSError):  # gap: ignore[GAP106] no repository (or not inside it): the comparison is simply off
        return None
    return show(root, "HEAD", relative)
