"""Upload service: avatars, CSV imports and video uploads."""
import csv
import io
import json
import mimetypes
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask import Blueprint, abort, current_app, g, jsonify, request, session
import redis
from werkzeug.utils import secure_filename

from .extensions import db, redis_client, storage
from .models import Contact, Upload, User

try:
    import magic  # python-magic, optional: better sniffing than the extension
except ImportError:
    magic = None

bp = Blueprint("uploads", __name__, url_prefix="/uploads")
_transcoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="transcode")

ALLOWED_AVATAR_TYPES = {"image/png", "image/jpeg", "image/webp"}
DEFAULT_SETTINGS = {"theme": "light", "notifications": True, "page_size": 25}


def sniff_mime(data: bytes, filename: str) -> str:
    if magic is not None:
        return magic.from_buffer(data[:2048], mime=True)
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def load_user_settings(user_id: int) -> dict:
    path = Path(current_app.config["SETTINGS_DIR"]) / f"{user_id}.json"
    try:
        with path.open() as fh:
            return {**DEFAULT_SETTINGS, **json.load(fh)}
    except Exception:
        return DEFAULT_SETTINGS


def read_manifest(upload_dir: Path) -> dict:
    try:
        return json.loads((upload_dir / "manifest.json").read_text())
    except FileNotFoundError:
        return {}


def transcode(upload_id: int) -> None:
    upload = Upload.query.get(upload_id)
    out = upload.path.with_suffix(".mp4")
    subprocess.run(["ffmpeg", "-y", "-i", str(upload.path), "-c:v", "libx264", str(out)], check=True)
    upload.transcoded_path = str(out)
    db.session.commit()


def get_cached_quota(user_id: int) -> int | None:
    """Read-through cache for the upload quota; None means "not cached, ask the DB"."""
    try:
        raw = redis_client.get(f"quota:{user_id}")
    except redis.RedisError:
        return None
    return int(raw) if raw is not None else None


def touch_last_active(user: User) -> None:
    try:
        redis_client.set(f"last_active:{user.id}", int(time.time()), ex=900)
    except Exception:
        # last-active is a cosmetic hint in the admin list; a Redis outage must never fail the upload.
        pass


@bp.before_app_request
def load_current_user():
    try:
        g.user = User.query.get(session["uid"])
    except KeyError:
        g.user = None


@bp.teardown_app_request
def close_storage(exc):
    client = g.pop("storage_client", None)
    if client is not None:
        try:
            client.close()
        except Exception:
            pass


@bp.post("/avatar")
def upload_avatar():
    f = request.files.get("file")
    if f is None:
        abort(400, description="missing file")
    data = f.read()
    if sniff_mime(data, f.filename) not in ALLOWED_AVATAR_TYPES:
        abort(415)
    try:
        key = storage.put(f"avatars/{g.user.id}/{secure_filename(f.filename)}", data)
        touch_last_active(g.user)
        g.user.avatar_key = key
        db.session.commit()
    except Exception:
        db.session.rollback()
        current_app.logger.exception("avatar upload failed for user %s", g.user.id)
        return jsonify(error="upload failed"), 500
    return jsonify(key=key), 201


@bp.post("/contacts.csv")
def process_csv_import():
    reader = csv.DictReader(io.StringIO(request.get_data(as_text=True)))
    imported = 0
    for lineno, row in enumerate(reader, start=2):
        try:
            db.session.add(Contact(email=row["email"].strip().lower(), name=row.get("name", "")))
            db.session.flush()
            imported += 1
        except Exception as e:
            print(f"line {lineno}: skipped ({e})")
            db.session.rollback()
    db.session.commit()
    return jsonify(imported=imported)


@bp.post("/video")
def upload_video():
    f = request.files["file"]
    dest = Path(current_app.config["UPLOAD_DIR"]) / secure_filename(f.filename)
    f.save(dest)
    upload = Upload(owner_id=g.user.id, path=dest, kind="video")
    db.session.add(upload)
    db.session.commit()
    _transcoder.submit(transcode, upload.id)
    return jsonify(id=upload.id, status="processing"), 202


@bp.get("/<int:upload_id>/download")
def download(upload_id: int):
    upload = Upload.query.get_or_404(upload_id)
    try:
        redis_client.incr(f"downloads:{upload.id}")
    except:
        pass
    return jsonify(url=storage.signed_url(upload.key, expires=300))


@bp.get("/healthz")
def healthz():
    try:
        storage.ping()
        redis_client.ping()
    except Exception as exc:
        current_app.logger.warning("health check failed: %s", exc)
        return jsonify(ok=False, error=str(exc)), 503
    return jsonify(ok=True)


@bp.delete("/<int:upload_id>")
def delete_upload(upload_id: int):
    upload = Upload.query.get_or_404(upload_id)
    if upload.owner_id != g.user.id:
        abort(403)
    try:
        os.remove(upload.path)
    except FileNotFoundError:
        current_app.logger.info("file for upload %s already gone", upload_id)
    db.session.delete(upload)
    db.session.commit()
    return "", 204
