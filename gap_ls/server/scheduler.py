"""When analysis runs, where, and which results may be used.

Analysis runs in a worker thread on an immutable Snapshot (uri, version,
text, settings) so the event loop stays free. Per document there is at most
one job in flight; edits arriving meanwhile are debounced, and when a job
finishes for a version that is already outdated, one new job is started for
the latest version — never a queue of stale jobs. A result is stored only if
it is newer than the stored one, and `on_result` decides whether to publish
(only for the current version). All state here is touched on the event loop
only; worker threads see nothing but their Snapshot.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path

from gap_ls.core.document import AnalysisDocument
from gap_ls.core.engine import Analysis
from gap_ls.core.idempotency import Catalogue, functions_of
from gap_ls.core.model import Finding
from gap_ls.core.resolve import Resolver
from gap_ls.core.review import (
    FunctionFacts,
    Risk,
    as_finding,
    facts_of,
    regressions,
    silenced,
    unit_function_facts,
)
from gap_ls.core.settings import Settings
from gap_ls.core.source import SourceSyntaxError, parse_module
from gap_ls.core.summary import ModuleSummary, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    uri: str
    version: int
    text: str
    lines: tuple[str, ...]
    path: Path | None
    settings: Settings
    resolver: Resolver | None = None  # thread-safe (jedi calls are serialised inside)


@dataclass(frozen=True)
class Result:
    """A completed analysis with the text and lines of the version it was computed for."""

    snapshot: Snapshot
    analysis: Analysis
    generation: int = 0

    @property
    def version(self) -> int:
        return self.snapshot.version


class DocumentAnalyses:
    """One incremental AnalysisDocument per open document, so an edit costs what the edited
    unit costs. Called from worker threads: the scheduler runs at most one job per document at
    a time, and the lock guards the table itself."""

    def __init__(self, head_text: Callable[[Path], str | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, AnalysisDocument] = {}
        self._open: set[str] = set()
        # The buffer is compared with the file at git HEAD (read on open and after each save):
        # the dropped guards only a diff shows are published too. None: never compared.
        self._head_text = head_text
        self._heads: dict[str, HeadVersion] = {}

    def opened(self, uri: str) -> None:
        with self._lock:
            self._open.add(uri)

    def closed(self, uri: str) -> None:
        with self._lock:
            self._open.discard(uri)
            self._documents.pop(uri, None)
            self._heads.pop(uri, None)

    def saved(self, uri: str) -> None:
        """HEAD may have moved (a commit) since it was read: read it again on the next analysis."""
        with self._lock:
            self._heads.pop(uri, None)

    def run(self, snapshot: Snapshot) -> Analysis:
        with self._lock:
            document = self._documents.get(snapshot.uri)
        if document is None or document.settings != snapshot.settings or document.resolver is not snapshot.resolver:
            document = AnalysisDocument(snapshot.settings, snapshot.path, snapshot.resolver)
        analysis = document.update(snapshot.lines)
        if analysis.stale:
            log.info(
                "%s v%d does not parse; keeping %d stale finding(s) from before until it does",
                snapshot.uri, snapshot.version, len(analysis.stale),
            )
        regressions = self._against_head(snapshot, analysis)
        if regressions:
            analysis = replace(analysis, findings=tuple(sorted((*analysis.findings, *regressions), key=Finding.sort_key)))
        with self._lock:
            if snapshot.uri in self._open:
                self._documents[snapshot.uri] = document
        return analysis

    def _against_head(self, snapshot: Snapshot, analysis: Analysis) -> list[Finding]:
        if self._head_text is None or snapshot.path is None or analysis.summary is None:
            return []
        with self._lock:
            head = self._heads.get(snapshot.uri)
        if head is None or head.settings != snapshot.settings:
            head = HeadVersion.read(self._head_text(snapshot.path), snapshot.settings)
            with self._lock:
                if snapshot.uri in self._open:
                    self._heads[snapshot.uri] = head
        return head.regressions(analysis, snapshot.lines)


class HeadVersion:
    """The file at git HEAD, read once per open/save. An edit costs what the edited unit costs:
    a buffer unit whose text is a unit of HEAD cannot have dropped anything; for the others, the
    facts of their functions (and of the same functions at HEAD, on demand) are compared, and the
    result is cached per unit text. Used by one analysis job at a time (one job per document)."""

    def __init__(self, text: str | None, settings: Settings) -> None:
        self.text = text
        self.settings = settings
        self.catalogue = Catalogue.extended(settings.retry_decorators, settings.side_effect_calls, settings.key_names)
        self._unit_texts: set[tuple[tuple[str, ...], str]] = set()
        self.functions_of: dict[str, tuple[ast.AST, str | None]] = {}
        self._summary: ModuleSummary | None = None
        self._tree: ast.Module | None = None
        self._base: dict[str, FunctionFacts] = {}
        self._risks: dict[tuple, list[Risk]] = {}  # by buffer unit: its risks, lines relative to the unit
        self._imports: dict[str, str] = {}  # the buffer's imports the cached risks were read with
        self._unchanged: dict[tuple[tuple[str, ...], str], bool] = {}  # buffer unit -> same text at HEAD?
        if text is not None:
            try:
                parsed = parse_module(text)
            except SourceSyntaxError:
                self.text = None  # HEAD does not parse: nothing to compare with
                return
            # Units of the document keep their trailing blank lines; those of parse_module do not.
            self._unit_texts = {(u.class_path, u.text.rstrip()) for u in parsed.units}
            self._tree = parsed.tree
            self.functions_of = {q: (f, c) for f, q, c in functions_of(parsed.tree.body, "", None)}

    @classmethod
    def read(cls, text: str | None, settings: Settings) -> HeadVersion:
        return cls(text, settings)

    def _base_facts(self, qualname: str) -> FunctionFacts | None:
        if qualname not in self._base:
            found = self.functions_of.get(qualname)
            if found is None or self._tree is None:
                return None
            if self._summary is None:
                self._summary = summarize(self._tree)  # only once a function really changed
            function, class_name = found
            self._base[qualname] = facts_of(function, qualname, class_name, self._summary, self.catalogue)
        return self._base[qualname]

    def regressions(self, analysis: Analysis, lines: tuple[str, ...]) -> list[Finding]:
        if self.text is None or analysis.summary is None:
            return []
        if analysis.summary.imports != self._imports:
            self._imports = dict(analysis.summary.imports)
            self._risks.clear()  # names are qualified through the imports: read every unit again
        found: list[Finding] = []
        live = set()
        for unit in analysis.units:
            key = (unit.class_path, unit.text)  # the unit's own strings: their hashes are cached
            unchanged = self._unchanged.get(key)
            if unchanged is None:
                unchanged = self._unchanged[key] = (unit.class_path, unit.text.rstrip()) in self._unit_texts
            if unchanged:
                live.add(key)
                continue  # as it is at HEAD
            live.add(key)
            if key not in self._risks:
                self._risks[key] = self._unit_risks(unit, analysis.summary)
            offset = unit.line_offset()
            moved = [replace(r, line=r.line + offset) for r in self._risks[key]]
            found.extend(as_finding(r, lines) for r in moved if not silenced(r, lines))
        for key in [k for k in self._risks if k not in live]:
            del self._risks[key]
        if len(self._unchanged) > 2 * len(live):
            self._unchanged = {k: v for k, v in self._unchanged.items() if k in live}
        return found

    def _unit_risks(self, unit, summary: ModuleSummary) -> list[Risk]:  # type: ignore[no-untyped-def]
        assert self.text is not None
        now = {f.qualname: f for f in unit_function_facts(unit.class_path, unit.parse_text(), summary, self.catalogue)}
        base = {q: b for q in now if (b := self._base_facts(q)) is not None}
        return regressions(self.text, base, now, self.settings)


class Scheduler:
    def __init__(
        self,
        executor: Executor,
        snapshot_of: Callable[[str], Snapshot | None],
        run: Callable[[Snapshot], Analysis],
        on_result: Callable[[Result], None],
        on_error: Callable[[str, BaseException], None],
        on_outdated: Callable[[str], None],
    ) -> None:
        self._executor = executor
        self._snapshot_of = snapshot_of
        self._run = run
        self._on_result = on_result
        self._on_error = on_error
        self._on_outdated = on_outdated
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._inflight: dict[str, tuple[int, asyncio.Future[Result]]] = {}
        self.results: dict[str, Result] = {}
        self._generation = 0  # bumped when something outside the document changed (configuration)

    def schedule(self, uri: str, delay_seconds: float) -> None:
        """Analyse ``uri`` after ``delay_seconds`` of quiet (a newer call restarts the wait)."""
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[uri] = loop.call_later(delay_seconds, self._fire, uri)

    def _fire(self, uri: str) -> None:
        self._timers.pop(uri, None)
        self._ensure(uri)

    def _ensure(self, uri: str) -> asyncio.Future[Result] | None:
        """The job for ``uri``: the one in flight, or a new one for the current version."""
        inflight = self._inflight.get(uri)
        if inflight is not None:
            return inflight[1]
        snapshot = self._snapshot_of(uri)
        if snapshot is None:
            return None
        stored = self.results.get(uri)
        if (stored is not None and stored.version == snapshot.version and stored.generation == self._generation
                and stored.snapshot.settings == snapshot.settings):  # a saved pyproject.toml changes settings
            done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            done.set_result(stored)
            return done
        future = asyncio.ensure_future(self._analyse(snapshot, self._generation))
        self._inflight[uri] = (snapshot.version, future)
        future.add_done_callback(lambda f: self._finished(uri, f))
        return future

    async def _analyse(self, snapshot: Snapshot, generation: int) -> Result:
        loop = asyncio.get_running_loop()
        analysis = await loop.run_in_executor(self._executor, self._run, snapshot)
        return Result(snapshot, analysis, generation)

    def _finished(self, uri: str, future: asyncio.Future[Result]) -> None:
        self._inflight.pop(uri, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._on_error(uri, error)
            return
        result = future.result()
        stored = self.results.get(uri)
        if self._snapshot_of(uri) is None:
            return  # closed while analysing
        if stored is None or (stored.version, stored.generation) <= (result.version, result.generation):
            self.results[uri] = result
            self._on_result(result)
        current = self._snapshot_of(uri)
        outdated = current is not None and (
            current.version != result.version
            or result.generation != self._generation
            or current.settings != result.snapshot.settings  # pyproject.toml changed while this job ran
        )
        if outdated and uri not in self._timers:
            self._on_outdated(uri)  # edits or a configuration change arrived while this job ran

    async def current(self, uri: str) -> Result | None:
        """A result for the document's current version (waits for the analysis if needed)."""
        for _ in range(100):  # each round is one analysis; the bound only guards against endless typing
            future = self._ensure(uri)
            if future is None:
                return None
            result = await asyncio.shield(future)
            snapshot = self._snapshot_of(uri)
            if snapshot is None or (result.version == snapshot.version and result.generation == self._generation
                                    and result.snapshot.settings == snapshot.settings):
                return result
        return self.results.get(uri)

    def forget(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        self._inflight.pop(uri, None)
        self.results.pop(uri, None)

    def invalidate(self) -> None:
        """Something besides the text changed (configuration): results are recomputed on demand,
        but stay readable for hover and code actions until then."""
        self._generation += 1
