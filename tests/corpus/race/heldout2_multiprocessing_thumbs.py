"""Batch thumbnail pipeline.

Decoding and resizing run in a process pool; the finished thumbnails are
uploaded from a thread pool in the parent.  Several pipeline hosts share the
NFS output tree, so anything under the output root may be touched by another
host at the same time.
"""
import argparse
import json
import logging
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

from PIL import Image

from pipeline.storage import upload_file

log = logging.getLogger("thumbs")

SIZES = (64, 256, 1024)

_worker_stats = {"decoded": 0, "skipped": 0}


def _init_worker() -> None:
    logging.basicConfig(level=logging.INFO, format="%(processName)s %(message)s")


def _prepare_shard(out_root: Path, stem: str) -> Path:
    shard = out_root / stem[:2] / stem[2:4]
    if not shard.exists():
        os.makedirs(shard)
    return shard


def _claim_source(out_root: Path, stem: str) -> bool:
    claims = out_root / ".claims"
    claims.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(claims / f"{stem}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{socket.gethostname()}:{os.getpid()}\n")
    return True


def _write_thumbnail(img, dest: Path, size: int) -> None:
    thumb = img.copy()
    thumb.thumbnail((size, size))
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        thumb.save(fh, format="WEBP", quality=82)
    os.replace(tmp, dest)


def render_one(src: str, out_root: str) -> list[str]:
    root = Path(out_root)
    stem = Path(src).stem
    if not _claim_source(root, stem):
        _worker_stats["skipped"] += 1
        return []
    shard = _prepare_shard(root, stem)
    outputs = []
    with Image.open(src) as img:
        img.load()
        _worker_stats["decoded"] += 1
        for size in SIZES:
            dest = shard / f"{stem}_{size}.webp"
            _write_thumbnail(img, dest, size)
            outputs.append(str(dest))
    if _worker_stats["decoded"] % 500 == 0:
        log.info("pid %d decoded %d images", os.getpid(), _worker_stats["decoded"])
    return outputs


def _append_manifest(out_root: Path, entries: list[str]) -> None:
    manifest = out_root / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {"files": []}
    data["files"].extend(entries)
    data["updated_at"] = time.time()
    manifest.write_text(json.dumps(data))


class ProgressTracker:
    """Per-host progress file so an interrupted run can resume."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self.uploaded: set[str] = set()
        self.bytes = 0
        self.last_error: str | None = None
        if path.exists():
            state = json.loads(path.read_text())
            self.uploaded, self.bytes = set(state["uploaded"]), state["bytes"]

    def record(self, name: str, size: int) -> None:
        with self._lock:
            self.uploaded.add(name)
            self.bytes += size
            self.last_error = None
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"uploaded": sorted(self.uploaded), "bytes": self.bytes}))
            os.replace(tmp, self._path)

    def note_error(self, name: str, exc: BaseException) -> None:
        self.last_error = f"{name}: {exc!r}"


class Uploader:
    retries_total = 0

    def __init__(self, bucket: str, out_root: Path, tracker: ProgressTracker, state_dir: Path):
        self.bucket = bucket
        self.out_root = out_root
        self.tracker = tracker
        self._failed_log = state_dir / "failed.tsv"

    def _put(self, path: Path) -> int:
        key = str(path.relative_to(self.out_root))
        for attempt in range(1, 4):
            try:
                upload_file(self.bucket, path, key=key)
                return path.stat().st_size
            except ConnectionError as exc:
                if attempt == 3:
                    raise
                Uploader.retries_total += 1
                log.warning("upload of %s failed (%r), retry %d", key, exc, attempt)
                time.sleep(2 ** attempt)
        raise AssertionError("unreachable")

    def _note_failed(self, path: Path, exc: BaseException) -> None:
        guard = threading.Lock()
        with guard:
            with self._failed_log.open("a", encoding="utf-8") as fh:
                fh.write(f"{path}\t{exc!r}\n")

    def upload_one(self, path: Path) -> int:
        try:
            size = self._put(path)
        except Exception as exc:
            log.exception("giving up on %s", path)
            self._note_failed(path, exc)
            self.tracker.note_error(path.name, exc)
            raise
        self.tracker.record(path.name, size)
        _append_manifest(self.out_root, [str(path.relative_to(self.out_root))])
        return size


def _counted(uploader: Uploader, counts: dict, lock: threading.Lock, path: Path) -> int:
    try:
        size = uploader.upload_one(path)
    except Exception:
        with lock:
            counts["failed"] += 1
        raise
    with lock:
        counts["ok"] += 1
    return size


def upload_outputs(paths: list[Path], uploader: Uploader, workers: int = 8) -> tuple[int, int]:
    pending = [p for p in paths if p.name not in uploader.tracker.uploaded]
    counts = {"ok": 0, "failed": 0}
    counts_lock = threading.Lock()
    job = partial(_counted, uploader, counts, counts_lock)
    total = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        futures = {pool.submit(job, path): path for path in pending}
        for fut in as_completed(futures):
            if fut.exception() is None:
                total += fut.result()
    log.info("uploaded %d files (%d bytes), %d failed, %d retries",
             counts["ok"], total, counts["failed"], Uploader.retries_total)
    return counts["ok"], counts["failed"]


def render_all(sources: list[str], out_root: Path, processes: int) -> list[Path]:
    outputs: list[Path] = []
    render = partial(render_one, out_root=str(out_root))
    with ProcessPoolExecutor(max_workers=processes, initializer=_init_worker) as pool:
        for rendered in pool.map(render, sources, chunksize=16):
            outputs.extend(Path(p) for p in rendered)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render and upload thumbnails")
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--state-dir", type=Path, default=Path.home() / ".cache" / "thumbs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    tracker = ProgressTracker(args.state_dir / f"progress-{socket.gethostname()}.json")
    sources = sorted(str(p) for p in args.src.rglob("*.jpg"))
    outputs = render_all(sources, args.out, args.processes)
    _, failed = upload_outputs(outputs, Uploader(args.bucket, args.out, tracker, args.state_dir))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
