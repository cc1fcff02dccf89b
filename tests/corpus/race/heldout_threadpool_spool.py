"""Spool-directory importer for partner CSV drops.

Partners upload CSV files into ``<spool>/incoming``. Each file is claimed,
converted to JSON lines under ``<spool>/out/<partner>/`` and recorded in
``<spool>/manifest.json``. Conversion runs on a thread pool; cron may start
a second run on another host while one is still going, which is why files
are claimed before they are touched.

Usage: python -m partners.spool_import /srv/spool --workers 8
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import itertools
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor as Pool, as_completed
from functools import partial

log = logging.getLogger("spool_import")

_batch_ids = itertools.count(1)
_errors: "queue.Queue[tuple[str, str]]" = queue.Queue()


def claim(path: str) -> str | None:
    """Claim a spool file by creating ``<path>.claim`` exclusively."""
    claim_path = path + ".claim"
    try:
        fd = os.open(claim_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.uname().nodename} {os.getpid()} {time.time():.0f}\n")
    return claim_path


def _log_rejects(out_dir: str, rejects: list[list[str]]) -> None:
    reject_path = os.path.join(out_dir, "rejects.csv")
    write_lock = threading.Lock()
    with write_lock:
        with open(reject_path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rejects)


def convert(path: str, out_root: str) -> int:
    name = os.path.basename(path)
    out_dir = os.path.join(out_root, name.split("_", 1)[0])
    if not os.path.isdir(out_dir):
        os.mkdir(out_dir)
    out_path = os.path.join(out_dir, f"{next(_batch_ids):06d}-{os.getpid()}.jsonl")
    rows, rejects = 0, []
    with open(path, newline="", encoding="utf-8") as src, open(out_path, "x", encoding="utf-8") as dst:
        for record in csv.DictReader(src):
            if not record.get("id") or not record.get("amount"):
                rejects.append([name, record.get("id") or "", "missing id or amount"])
                continue
            dst.write(json.dumps(record, separators=(",", ":")) + "\n")
            rows += 1
    if rejects:
        _log_rejects(out_dir, rejects)
    return rows


def _append_manifest(manifest_path: str, name: str, rows: int) -> None:
    try:
        with open(manifest_path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        manifest = {"files": {}}
    manifest["files"][name] = {"rows": rows, "imported_at": time.time()}
    with open(manifest_path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)


def _merge_run_state(state_path: str, run_id: str, summary: dict) -> None:
    with open(state_path + ".lock", "a") as lock_fh:
        fcntl.flock(lock_fh.fileno(), fcntl.LOCK_EX)
        try:
            with open(state_path, encoding="utf-8") as fh:
                state = json.load(fh)
        except FileNotFoundError:
            state = {"runs": {}}
        state["runs"][run_id] = summary
        tmp = f"{state_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, state_path)


class Progress:
    """Per-run progress shared by the worker threads."""

    def __init__(self, total: int):
        self._lock = threading.Lock()
        self.total = total
        self.done = 0
        self.failed = 0
        self.rows = 0
        self.last_file: str | None = None

    def advance(self, name: str, rows: int) -> None:
        with self._lock:
            self.done += 1
            self.rows += rows
            self.last_file = name
            done, total = self.done, self.total
        if done % 50 == 0 or done == total:
            log.info("%d/%d files imported", done, total)

    def fail(self, name: str) -> None:
        self.last_file = name
        with self._lock:
            self.failed += 1

    def summary(self) -> dict:
        with self._lock:
            return {"total": self.total, "done": self.done, "failed": self.failed,
                    "rows": self.rows, "last_file": self.last_file}


class Importer:
    def __init__(self, spool: str, workers: int):
        self.spool = spool
        self.incoming = os.path.join(spool, "incoming")
        self.out_root = os.path.join(spool, "out")
        self.manifest_path = os.path.join(spool, "manifest.json")
        self.workers = workers
        self.progress = Progress(total=0)
        self.bytes_read = 0

    def _process(self, path: str, out_root: str) -> int:
        name = os.path.basename(path)
        claim_path = claim(path)
        if claim_path is None:
            log.info("skip %s: claimed by another run", name)
            return 0
        try:
            size = os.path.getsize(path)
            rows = convert(path, out_root)
            _append_manifest(self.manifest_path, name, rows)
            os.remove(path)
        except Exception as exc:
            self.progress.fail(name)
            _errors.put((name, repr(exc)))
            log.exception("import of %s failed", name)
            raise
        finally:
            os.remove(claim_path)
        self.bytes_read += size
        self.progress.advance(name, rows)
        return rows

    def run(self) -> dict:
        os.makedirs(self.out_root, exist_ok=True)
        files = sorted(os.path.join(self.incoming, n) for n in os.listdir(self.incoming) if n.endswith(".csv"))
        self.progress = Progress(total=len(files))
        failed: list[str] = []
        with Pool(max_workers=self.workers, thread_name_prefix="spool") as pool:
            work = partial(self._process, out_root=self.out_root)
            futures = {pool.submit(work, path): path for path in files}
            for fut in as_completed(futures):
                if fut.exception() is not None:
                    failed.append(os.path.basename(futures[fut]))
        errors = [_errors.get_nowait() for _ in range(_errors.qsize())]
        summary = self.progress.summary() | {"bytes_read": self.bytes_read, "failed_files": failed,
                                             "errors": dict(errors)}
        _merge_run_state(os.path.join(self.spool, "runs.json"), uuid.uuid4().hex, summary)
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import partner CSV drops from a spool directory.")
    parser.add_argument("spool")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    summary = Importer(args.spool, args.workers).run()
    log.info("run finished: %s", json.dumps(summary))
    return 1 if summary["failed_files"] else 0


if __name__ == "__main__":
    sys.exit(main())
