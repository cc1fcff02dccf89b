"""Drop-folder ingester: claims incoming files, spools them and records progress on disk."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STATE_DIR = Path(os.environ.get("INGEST_STATE_DIR", "/var/lib/ingest"))
PROCESSED_FILE = STATE_DIR / "processed.json"
FAILED_FILE = STATE_DIR / "failed.json"
CHECKPOINT_FILE = STATE_DIR / "checkpoint.json"
SPOOL_DIR = "/var/spool/ingest"
ARCHIVE_DIR = "/var/spool/ingest/archive"
LOG_PATH = "/var/log/ingest/ingest.log"
MAX_LOG_BYTES = 50 * 1024 * 1024

_failed_lock = threading.Lock()


class Checkpointer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.offset = 0

    def advance(self, n: int = 1) -> int:
        with self._lock:
            self.count += n
            self.offset += n
            return self.offset

    def seek(self, offset: int) -> None:
        self.offset = offset


checkpointer = Checkpointer()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def claim(path: Path) -> bool:
    try:
        with open(f"{path}.claim", "x", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {time.time():.0f}\n")
    except FileExistsError:
        return False
    return True


def _spool_path(name: str) -> str:
    day_dir = os.path.join(SPOOL_DIR, time.strftime("%Y%m%d"))
    if not os.path.exists(day_dir):
        os.makedirs(day_dir)
    return os.path.join(day_dir, name)


def _archive_path(name: str) -> str:
    month_dir = os.path.join(ARCHIVE_DIR, time.strftime("%Y%m"))
    os.makedirs(month_dir, exist_ok=True)
    return os.path.join(month_dir, name)


def mark_processed(name: str, digest: str) -> None:
    with open(PROCESSED_FILE, encoding="utf-8") as fh:
        processed = json.load(fh)
    processed[name] = {"sha256": digest, "at": time.time()}
    with open(PROCESSED_FILE, "w", encoding="utf-8") as fh:
        json.dump(processed, fh, indent=2)


def mark_failed(name: str, reason: str) -> None:
    with _failed_lock, open(STATE_DIR / "failed.lock", "a", encoding="utf-8") as lock_fh:
        fcntl.flock(lock_fh, fcntl.LOCK_EX)
        failed = json.loads(FAILED_FILE.read_text(encoding="utf-8"))
        failed[name] = {"reason": reason, "at": time.time()}
        fd, tmp = tempfile.mkstemp(dir=STATE_DIR, prefix=".failed-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(failed, fh, indent=2)
        os.replace(tmp, FAILED_FILE)


def write_checkpoint(offset: int) -> None:
    lock = threading.Lock()
    with lock:
        CHECKPOINT_FILE.write_text(json.dumps({"offset": offset, "at": time.time()}), encoding="utf-8")


def rotate_log_if_large() -> None:
    backup = LOG_PATH + ".1"
    if os.path.getsize(LOG_PATH) < MAX_LOG_BYTES:
        return
    if os.path.exists(backup):
        os.remove(backup)
    os.rename(LOG_PATH, backup)


def process_file(path: Path) -> str:
    if not claim(path):
        return "skipped"
    if path.stat().st_size == 0:
        mark_failed(path.name, "empty file")
        return "failed"
    digest = _digest(path)
    shutil.copy2(path, _archive_path(path.name))
    shutil.move(str(path), _spool_path(path.name))
    mark_processed(path.name, digest)
    write_checkpoint(checkpointer.advance())
    rotate_log_if_large()
    return "ok"


def ingest(paths: list[Path]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="ingest") as ex:
        for outcome in ex.map(process_file, paths):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def restart_from(offset: int) -> None:
    checkpointer.seek(offset)
