"""Webhook blueprint for the Flask storefront (Shopify, GitHub, Mailchimp)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from decimal import Decimal

from flask import Blueprint, abort, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import EmailPreference, Order, OrderLine, ProcessedWebhook, Refund
from .tasks import build_docs, restock_items

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _shopify_hmac_ok(raw: bytes, header: str | None) -> bool:
    secret = current_app.config["SHOPIFY_WEBHOOK_SECRET"].encode()
    digest = base64.b64encode(hmac.new(secret, raw, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(digest, header or "")


def _github_signature_ok(raw: bytes, header: str | None) -> bool:
    secret = current_app.config["GITHUB_WEBHOOK_SECRET"].encode()
    expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


def _mailchimp_secret_ok() -> bool:
    return hmac.compare_digest(request.args.get("secret", ""), current_app.config["MAILCHIMP_WEBHOOK_SECRET"])


def _order_from_payload(payload: dict) -> Order:
    order = Order(
        shopify_id=payload["id"],
        email=payload.get("email", ""),
        currency=payload["currency"],
        total=Decimal(payload["total_price"]),
        placed_at=datetime.fromisoformat(payload["created_at"]),
    )
    order.lines = [
        OrderLine(sku=item["sku"], quantity=item["quantity"], unit_price=Decimal(item["price"]))
        for item in payload.get("line_items", [])
    ]
    return order


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@bp.post("/shopify/orders-create")
def shopify_orders_create_webhook():
    if not _shopify_hmac_ok(request.get_data(), request.headers.get("X-Shopify-Hmac-Sha256")):
        abort(401)
    payload = request.get_json(force=True)
    order = _order_from_payload(payload)
    db.session.add(order)
    db.session.commit()
    current_app.logger.info("imported Shopify order %s as %s", payload["id"], order.id)
    return jsonify(status="ok", order_id=order.id), 200


@bp.post("/shopify/refunds-create")
def shopify_refunds_create_webhook():
    if not _shopify_hmac_ok(request.get_data(), request.headers.get("X-Shopify-Hmac-Sha256")):
        abort(401)
    webhook_id = request.headers["X-Shopify-Webhook-Id"]
    try:
        db.session.add(ProcessedWebhook(webhook_id=webhook_id, topic="refunds/create", received_at=_utcnow()))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        current_app.logger.info("duplicate Shopify webhook %s ignored", webhook_id)
        return jsonify(status="duplicate"), 200

    payload = request.get_json(force=True)
    refund = Refund(
        shopify_id=payload["id"],
        order_shopify_id=payload["order_id"],
        amount=sum(Decimal(t["amount"]) for t in payload.get("transactions", [])),
        note=payload.get("note") or "",
    )
    db.session.add(refund)
    db.session.commit()
    restock_items.delay(refund.id)
    return jsonify(status="ok"), 200


@bp.post("/github")
def github_push_webhook():
    if not _github_signature_ok(request.get_data(), request.headers.get("X-Hub-Signature-256")):
        abort(401)
    if request.headers.get("X-GitHub-Event") != "push":
        return jsonify(status="ignored"), 202
    payload = request.get_json(force=True)
    if payload.get("ref") != "refs/heads/main":
        return jsonify(status="ignored"), 202
    build_docs.apply_async(
        args=[payload["repository"]["full_name"], payload["after"]],
        queue="docs",
    )
    return jsonify(status="queued"), 202


@bp.route("/mailchimp", methods=["GET", "POST"])
def mailchimp_webhook():
    if not _mailchimp_secret_ok():
        abort(403)
    if request.method == "GET":
        return "", 200
    kind = request.form.get("type")
    if kind not in ("unsubscribe", "subscribe", "cleaned"):
        return jsonify(status="ignored"), 200
    email = request.form["data[email]"].strip().lower()
    db.session.merge(
        EmailPreference(email=email, subscribed=(kind == "subscribe"), source="mailchimp", updated_at=_utcnow())
    )
    db.session.commit()
    return jsonify(status="ok"), 200
