"""Public pricing API: quotes, FX rates, coupon redemption and report exports."""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from threading import Lock

import requests
from flask import Blueprint, Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import update
from werkzeug.utils import secure_filename

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///pricing.db")
db = SQLAlchemy(app)
bp = Blueprint("api", __name__, url_prefix="/api")

EXPORT_DIR = os.environ.get("EXPORT_DIR", "/var/lib/pricing/exports")
AUDIT_LOG = os.environ.get("AUDIT_LOG", "/var/log/pricing/audit.log")
FX_URL = "https://fx.example.com/v2/latest"
DAILY_QUOTE_LIMIT = 1000

_quote_hits: dict[str, int] = {}
_search_hits: dict[str, int] = {}
_hits_lock = Lock()
_RATE_CACHE: dict[str, float] = {}
_recent_queries: dict[str, deque] = {}


class Coupon(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(32), unique=True, nullable=False)
    uses_left = db.Column(db.Integer, nullable=False, default=0)


class SlidingWindowLimiter:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._events: dict[str, deque] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def reset(self) -> None:
        self._events = {}


limiter = SlidingWindowLimiter(limit=30, window=60.0)


def _fetch_rate(currency: str) -> float:
    resp = requests.get(FX_URL, params={"base": "EUR", "symbols": currency}, timeout=5)
    resp.raise_for_status()
    return float(resp.json()["rates"][currency])


@app.route("/api/quote")
def quote():
    client = request.headers.get("X-Api-Key", request.remote_addr)
    _quote_hits[client] = _quote_hits.get(client, 0) + 1
    if _quote_hits[client] > DAILY_QUOTE_LIMIT:
        abort(429)
    amount = float(request.args.get("amount", "0"))
    return jsonify({"amount": amount, "fee": round(amount * 0.029 + 0.3, 2)})


@bp.post("/search")
def search():
    client = request.headers.get("X-Api-Key", request.remote_addr)
    with _hits_lock:
        _search_hits[client] = _search_hits.get(client, 0) + 1
        used = _search_hits[client]
    _recent_queries.setdefault(client, deque(maxlen=20)).append(request.json.get("q", ""))
    if used > DAILY_QUOTE_LIMIT:
        abort(429)
    return jsonify({"results": [], "used": used})


@bp.get("/rates/<currency>")
def rates(currency: str):
    currency = currency.upper()
    if currency not in _RATE_CACHE:
        _RATE_CACHE[currency] = _fetch_rate(currency)
    return jsonify({"base": "EUR", "currency": currency, "rate": _RATE_CACHE[currency]})


@bp.get("/limited/<key>")
def limited(key: str):
    if not limiter.allow(key):
        abort(429)
    return jsonify({"ok": True})


@bp.post("/admin/limits/reset")
def reset_limits():
    limiter.reset()
    return "", 204


@app.post("/coupons/<code>/redeem")
def redeem_coupon(code: str):
    coupon = Coupon.query.filter_by(code=code).first()
    if coupon is None:
        abort(404)
    if coupon.uses_left <= 0:
        return jsonify({"error": "coupon exhausted"}), 409
    coupon.uses_left -= 1
    db.session.commit()
    return jsonify({"code": code, "uses_left": coupon.uses_left})


@app.post("/coupons/<code>/redeem-once")
def redeem_coupon_atomic(code: str):
    result = db.session.execute(
        update(Coupon)
        .where(Coupon.code == code, Coupon.uses_left > 0)
        .values(uses_left=Coupon.uses_left - 1)
    )
    db.session.commit()
    if result.rowcount == 0:
        return jsonify({"error": "coupon exhausted or unknown"}), 409
    return jsonify({"code": code})


@app.delete("/exports/<name>")
def delete_export(name: str):
    path = os.path.join(EXPORT_DIR, secure_filename(name))
    if os.path.exists(path):
        os.remove(path)
    return "", 204


@app.post("/exports/<name>")
def create_export(name: str):
    os.makedirs(EXPORT_DIR, exist_ok=True)
    path = os.path.join(EXPORT_DIR, secure_filename(name))
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(request.get_data(as_text=True))
    except FileExistsError:
        return jsonify({"error": "export already exists"}), 409
    return jsonify({"path": path}), 201


@app.post("/audit")
def append_audit():
    line = f"{time.time():.3f} {request.remote_addr} {request.get_data(as_text=True)}\n"
    with threading.Lock():
        with open(AUDIT_LOG, "a", encoding="utf-8") as fh:
            fh.write(line)
    return "", 202


app.register_blueprint(bp)
