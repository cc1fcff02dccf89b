"""Internal artifact store for the CI runners (``serve``) plus an offline ``export`` report."""
import argparse
import hashlib
import itertools
import json
import logging
import os
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("artifact_store")

ROOT = Path(os.environ.get("ARTIFACT_ROOT", "/srv/artifacts"))
INDEX_PATH = ROOT / "index.json"

_request_ids = itertools.count(1)
_bytes_received = 0
_index_lock = threading.Lock()


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.uploads = 0
        self.downloads = 0
        self.last_client: str | None = None

    def record_upload(self, client: str) -> None:
        with self._lock:
            self.uploads += 1
            self.last_client = client

    def record_download(self, client: str) -> None:
        with self._lock:
            self.downloads += 1
        self.last_client = client

    def snapshot(self) -> dict:
        with self._lock:
            return {"uploads": self.uploads, "downloads": self.downloads, "last_client": self.last_client}


STATS = Stats()


def _artifact_path(project: str, name: str) -> Path:
    return ROOT / Path(project).name / Path(name).name


def _store_once(path: Path, data: bytes) -> bool:
    """Artifacts are immutable: the first upload of a name wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "xb") as fh:
            fh.write(data)
    except FileExistsError:
        return False
    return True


def _write_sidecar(path: Path, digest: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sha-")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{digest}  {path.name}\n")
    os.replace(tmp, path.with_name(path.name + ".sha256"))


def _save_release_notes(project: str, version: str, text: str) -> None:
    notes = ROOT / Path(project).name / "RELEASE_NOTES" / f"{Path(version).name}.md"
    if not notes.parent.exists():
        notes.parent.mkdir(parents=True)
    notes.write_text(text, encoding="utf-8")


def _publish(project: str, version: str, digest: str) -> None:
    with open(INDEX_PATH, encoding="utf-8") as fh:
        index = json.load(fh)
    index.setdefault(project, {})[version] = digest
    tmp = INDEX_PATH.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
    os.replace(tmp, INDEX_PATH)


def _yank(project: str, version: str) -> bool:
    with _index_lock:
        with open(INDEX_PATH, encoding="utf-8") as fh:
            index = json.load(fh)
        removed = index.get(project, {}).pop(version, None) is not None
        fd, tmp = tempfile.mkstemp(dir=ROOT, prefix=".index-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(index, fh, indent=2, sort_keys=True)
        os.replace(tmp, INDEX_PATH)
    return removed


class ArtifactHandler(BaseHTTPRequestHandler):
    server_version = "artifact-store/1.4"

    def _reply(self, status: HTTPStatus, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _target(self) -> tuple[str, str]:
        project, _, name = self.path.split("?", 1)[0].strip("/").partition("/")
        return project, name

    def _append_audit(self, line: str) -> None:
        lock = threading.Lock()
        with lock:
            with open(ROOT / "audit.log", "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def do_PUT(self) -> None:
        global _bytes_received
        request_id = next(_request_ids)
        project, name = self._target()
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        _bytes_received += length
        path = _artifact_path(project, name)
        if not _store_once(path, data):
            self._reply(HTTPStatus.CONFLICT, {"error": "artifact exists", "request": request_id})
            return
        digest = hashlib.sha256(data).hexdigest()
        _write_sidecar(path, digest)
        STATS.record_upload(self.client_address[0])
        self._append_audit(f"{request_id} PUT {project}/{name} {digest}")
        self._reply(HTTPStatus.CREATED, {"sha256": digest, "request": request_id})

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._reply(HTTPStatus.OK, {**STATS.snapshot(), "bytes_received": _bytes_received})
            return
        path = _artifact_path(*self._target())
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "no such artifact"})
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                self.wfile.write(chunk)
        STATS.record_download(self.client_address[0])

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        project, version = body["project"], body["version"]
        if self.path == "/publish":
            _publish(project, version, body["sha256"])
            if body.get("notes"):
                _save_release_notes(project, version, body["notes"])
            self._reply(HTTPStatus.OK, {"published": f"{project}@{version}"})
        elif self.path == "/yank":
            self._reply(HTTPStatus.OK, {"yanked": _yank(project, version)})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "unknown endpoint"})

    def do_DELETE(self) -> None:
        path = _artifact_path(*self._target())
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        self._append_audit(f"- DELETE {self.path}")
        self._reply(HTTPStatus.NO_CONTENT, {})


def serve(host: str, port: int) -> None:
    ROOT.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), ArtifactHandler)
    server.daemon_threads = True
    log.info("artifact store on %s:%d serving %s", host, port, ROOT)
    server.serve_forever()


def export_report(out: Path, force: bool) -> int:
    if out.exists() and not force:
        raise SystemExit(f"{out} exists; pass --force to overwrite")
    if not out.parent.exists():
        out.parent.mkdir(parents=True)
    with open(INDEX_PATH, encoding="utf-8") as fh:
        index = json.load(fh)
    total = 0
    with open(out, "w", encoding="utf-8") as fh:
        for project, versions in sorted(index.items()):
            total += len(versions)
            fh.write(f"{project}\t{len(versions)}\t{max(versions, default='-')}\n")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="artifact_store")
    sub = parser.add_subparsers(dest="cmd", required=True)
    srv = sub.add_parser("serve")
    srv.add_argument("--port", type=int, default=8081)
    exp = sub.add_parser("export")
    exp.add_argument("out", type=Path)
    exp.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.cmd == "serve":
        serve("0.0.0.0", args.port)
    else:
        print(f"{export_report(args.out, args.force)} versions written to {args.out}")


if __name__ == "__main__":
    main()
