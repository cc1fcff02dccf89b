"""Checking many files fast: worker processes and a content-keyed cache.

Files are analysed in a pool of processes (``--jobs``, default: the number of
cores) and each result is cached under ``.gap_ls_cache/`` keyed by the file's
bytes, the gap-ls version and the effective configuration, like ruff's cache:
a warm re-run reads JSON instead of parsing. ``--no-cache`` bypasses it.
Cache entries are written atomically (a temporary file, then ``os.replace``),
so concurrent runs never read half a file.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import os
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gap_ls import __version__
from gap_ls.core.model import Finding
from gap_ls.core.settings import Settings

CACHE_DIR = ".gap_ls_cache"
# Below this many files a process pool costs more than it saves.
POOL_THRESHOLD = 8
# libcst builds hundreds of thousands of short-lived nodes per file that reference counting
# frees; at the default threshold (700 allocations) the cyclic collector runs thousands of
# times for nothing. Measured on the standard library: 10% less time, the same peak memory.
GC_THRESHOLD = 10_000


@dataclass(frozen=True)
class Job:
    path: Path
    settings: Settings
    cache_root: Path | None = None  # the project's folder (where its pyproject.toml is); None: no cache


@dataclass(frozen=True)
class Outcome:
    path: Path
    findings: tuple[Finding, ...] = ()
    suppressed: tuple[Finding, ...] = ()
    problem: str | None = None  # the file could not be read or analysed
    cache_problem: str | None = None  # the result could not be cached (the run is still right)


@dataclass(frozen=True)
class Options:
    follow_imports: bool
    debug: bool


def run(jobs: list[Job], workers: int, options: Options) -> list[Outcome]:
    """Outcomes in the order of ``jobs``: cached ones read here, the rest analysed in workers."""
    # A cache that does not exist yet holds nothing: skip reading and hashing every file here.
    present = {
        root
        for root in {job.cache_root for job in jobs}
        if root is not None and (root / CACHE_DIR / __version__).is_dir()
    }
    outcomes: list[Outcome | None] = [_cached(job, options) if job.cache_root in present else None for job in jobs]
    missing = [index for index, outcome in enumerate(outcomes) if outcome is None]
    todo = [jobs[index] for index in missing]
    if workers <= 1 or len(todo) < POOL_THRESHOLD:
        _collect_less()
        fresh = [check_one(job, options) for job in todo]
    else:
        fresh = _in_pool(todo, workers, options)
    for index, outcome in zip(missing, fresh, strict=True):
        outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _in_pool(todo: list[Job], workers: int, options: Options) -> list[Outcome]:
    """Outcomes in the order of ``todo``. The largest files go first, in small chunks, so no
    worker is left with a big file while the others are idle at the end."""
    order = sorted(range(len(todo)), key=lambda i: -_size(todo[i].path))
    chunk = max(1, len(todo) // (workers * 64))
    with ProcessPoolExecutor(max_workers=workers, initializer=_collect_less) as pool:
        done = pool.map(check_one, [todo[i] for i in order], [options] * len(todo), chunksize=chunk)
        by_index = dict(zip(order, done, strict=True))
    return [by_index[i] for i in range(len(todo))]


def _collect_less() -> None:
    """Run the cyclic garbage collector less often in this (batch) process."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # check_one reports why the file cannot be read


def _cached(job: Job, options: Options) -> Outcome | None:
    if job.cache_root is None:
        return None
    try:
        data = job.path.read_bytes()
    except OSError:
        return None  # check_one reads it again and reports why it cannot
    return _read(_cache_file(job, data, options), job.path)


_resolver = None  # one JediResolver per process: jedi keeps its own caches


def check_one(job: Job, options: Options) -> Outcome:
    try:
        data = job.path.read_bytes()
    except OSError as exc:
        return Outcome(job.path, problem=exc.strerror or str(exc))
    cache = _cache_file(job, data, options) if job.cache_root is not None else None
    if cache is not None and (cached := _read(cache, job.path)) is not None:
        return cached
    from gap_ls.core.engine import analyze_bytes  # the analysis machinery loads only on a cache miss

    try:
        analysis = analyze_bytes(data, job.settings, job.path.absolute(), _jedi(options))
    except Exception as exc:  # noqa: BLE001 - one file's internal error must not stop the run; it is reported
        return Outcome(job.path, problem=internal_error(exc, options.debug))
    outcome = Outcome(job.path, analysis.findings, analysis.suppressed)
    if cache is not None:
        try:
            _write(cache, outcome)
        except OSError as exc:
            return Outcome(job.path, analysis.findings, analysis.suppressed, cache_problem=f"{cache.parent}: {exc}")
    return outcome


def internal_error(exc: BaseException, debug: bool) -> str:
    """How an internal error is reported: even an exception whose str() fails gets a message."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not turn a report into a crash
        text = "<unprintable>"
    detail = "\n" + "".join(traceback.format_exception(exc)) if debug else ""
    return f"internal error: {type(exc).__name__}: {text} (please report this){detail}"


def _jedi(options: Options):
    global _resolver
    if options.follow_imports and _resolver is None:
        from gap_ls.core.resolve import JediResolver  # jedi loads only when asked for

        _resolver = JediResolver(Path.cwd())
    return _resolver if options.follow_imports else None


def _cache_file(job: Job, data: bytes, options: Options) -> Path:
    assert job.cache_root is not None
    settings = job.settings
    key = hashlib.sha256()
    for part in (
        __version__,
        _code_fingerprint(),
        repr(_settings_key(settings)),
        repr(settings.ignored_for(job.path.absolute())),
        str(options.follow_imports),
    ):
        key.update(part.encode())
        key.update(b"\0")
    key.update(data)
    digest = key.hexdigest()
    return job.cache_root / CACHE_DIR / __version__ / digest[:2] / f"{digest}.json"


@functools.cache
def _code_fingerprint() -> str:
    """A digest of gap-ls's own source: a changed rule must not be served stale cached results,
    even between releases that share a version number (development installs)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _settings_key(settings: Settings) -> tuple:
    return (
        settings.select,
        settings.ignore,
        tuple(sorted((k, v.value) for k, v in settings.severity.items())),
        tuple(sorted(settings.per_file_ignores.items())),
        settings.logging_calls,
        settings.error_boundaries,
        settings.retry_decorators,
        settings.side_effect_calls,
        settings.key_names,
        settings.lock_types,
    )


def _read(cache: Path, path: Path) -> Outcome | None:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        findings = tuple(Finding.from_json(f) for f in data["findings"])
        suppressed = tuple(Finding.from_json(f) for f in data["suppressed"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # gap: ignore[GAP106] damaged entry: a miss, rewritten
        return None
    return Outcome(path, findings, suppressed)


def _write(cache: Path, outcome: Outcome) -> None:
    payload = {
        "findings": [f.to_json() for f in outcome.findings],
        "suppressed": [f.to_json() for f in outcome.suppressed],
    }
    _make_folder(cache.parent)
    _mark_cache_root(cache.parents[2])
    handle, temporary = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(payload, stream)
    os.replace(temporary, cache)


@functools.cache  # once per folder and process
def _make_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


@functools.cache  # once per cache and process
def _mark_cache_root(root: Path) -> None:
    """Keep the cache out of git and backups, as ruff does."""
    _create_once(root / ".gitignore", "# Automatically created by gap-ls.\n*\n")
    _create_once(root / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n# Created by gap-ls.\n")


def _create_once(path: Path, text: str) -> None:
    """Write ``path`` unless it exists. Workers (and concurrent runs) race to do this, so the
    file is created with mode "x": exactly one writer wins, the others find it there."""
    try:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        pass  # another worker created it, with the same content
