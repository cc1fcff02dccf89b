"""Payments and order events: retries and redeliveries that repeat a side effect (GAP3xx)."""

import uuid

import requests
import stripe
from celery import shared_task
from django.core.cache import cache
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from requests.adapters import HTTPAdapter
from tenacity import retry, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from shop.models import Order, Payment

WEBHOOK_SECRET = "whsec_example"

partner = requests.Session()
partner.mount("https://", HTTPAdapter(max_retries=Retry(total=5, backoff_factor=0.5, allowed_methods=None)))


@retry(stop=stop_after_attempt(3), wait=wait_exponential())
def charge(order):
    # A timeout after Stripe charged the card retries the charge: the customer pays twice.
    return stripe.PaymentIntent.create(amount=order.total_cents, currency="eur", customer=order.customer_id)


@retry(stop=stop_after_attempt(3))
def refund(charge_id, amount):
    # A key, but a new one on every attempt: Stripe cannot tell the retry from a new refund.
    return stripe.Refund.create(charge=charge_id, amount=amount, idempotency_key=str(uuid.uuid4()))


@retry(stop=stop_after_attempt(3))
def capture(order_id, amount):
    # The key names the operation and survives retries: fine.
    return stripe.PaymentIntent.capture(order_id, amount_to_capture=amount, idempotency_key=f"capture-{order_id}")


def push_order(order):
    # The session above retries POST on read errors and 5xx: this order can arrive twice.
    return partner.post("https://partner.example.com/orders", json=order.as_dict(), timeout=10)


@shared_task(bind=True, autoretry_for=(requests.RequestException,), max_retries=5)
def fulfil(self, order_id):
    order = Order.objects.get(pk=order_id)
    # Sent again on every retry caused by the warehouse call below.
    requests.post("https://mail.example.com/send", json={"to": order.email, "template": "shipped"}, timeout=5)
    requests.put(f"https://warehouse.example.com/orders/{order_id}/ship", timeout=5).raise_for_status()


@csrf_exempt
def stripe_webhook(request):
    event = stripe.Webhook.construct_event(request.body, request.headers["Stripe-Signature"], WEBHOOK_SECRET)
    # Stripe re-sends events until it gets a 2xx: a slow 200 means a second Payment row.
    Payment.objects.create(intent=event["data"]["object"]["id"], amount=event["data"]["object"]["amount"])
    return HttpResponse(status=200)


@csrf_exempt
def stripe_webhook_deduplicated(request):
    event = stripe.Webhook.construct_event(request.body, request.headers["Stripe-Signature"], WEBHOOK_SECRET)
    if not cache.add(f"stripe-event:{event['id']}", 1, timeout=7 * 24 * 3600):
        return HttpResponse(status=200)  # a redelivery: already handled
    Payment.objects.create(intent=event["data"]["object"]["id"], amount=event["data"]["object"]["amount"])
    return HttpResponse(status=200)
