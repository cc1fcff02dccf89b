"""Inbound webhooks: Stripe, Shopify, GitHub, Paddle and the carrier tracking feed."""
import base64
import hashlib
import hmac
import json
import logging

import stripe
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django.views.generic.edit import FormView

from billing.models import DunningNotice, Subscription
from ci.tasks import run_ci_pipeline
from shop.forms import ContactForm
from shop.models import ContactRequest, Order, ShopOrder, ShopOrderLine, WebhookDelivery, WebhookEvent
from shipping.models import Shipment

logger = logging.getLogger(__name__)


def _valid_shopify_hmac(request) -> bool:
    digest = hmac.new(settings.SHOPIFY_WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    return hmac.compare_digest(expected, request.headers.get("X-Shopify-Hmac-Sha256", ""))


def _valid_github_signature(request) -> bool:
    mac = hmac.new(settings.GITHUB_WEBHOOK_SECRET.encode(), request.body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), request.headers.get("X-Hub-Signature-256", ""))


def _valid_paddle_signature(request) -> bool:
    header = dict(part.split("=", 1) for part in request.headers.get("Paddle-Signature", "").split(";") if "=" in part)
    signed = f"{header.get('ts', '')}:{request.body.decode()}".encode()
    mac = hmac.new(settings.PADDLE_WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, header.get("h1", ""))


def _notify_delivered(shipment: Shipment) -> None:
    send_mail(
        subject=f"Order #{shipment.order.number} was delivered",
        message=render_to_string("emails/delivered.txt", {"shipment": shipment}),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[shipment.order.customer_email],
    )


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.META.get("HTTP_STRIPE_SIGNATURE", ""), settings.STRIPE_WEBHOOK_SECRET
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest("invalid payload")

    if event["type"] == "checkout.session.completed":
        session = event["data"]["object"]
        order = Order.objects.create(
            customer_email=session["customer_details"]["email"],
            amount_total=session["amount_total"],
            currency=session["currency"],
            stripe_session_id=session["id"],
            status=Order.Status.PAID,
        )
        send_mail(
            subject="Thanks for your order",
            message=render_to_string("emails/order_received.txt", {"order": order}),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[order.customer_email],
        )
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def stripe_billing_webhook(request):
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.META.get("HTTP_STRIPE_SIGNATURE", ""), settings.STRIPE_BILLING_WEBHOOK_SECRET
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest("invalid payload")

    if not cache.add(f"stripe:evt:{event['id']}", 1, 86400):
        return HttpResponse(status=200)

    if event["type"] == "invoice.payment_failed":
        invoice = event["data"]["object"]
        notice = DunningNotice.objects.create(
            stripe_invoice_id=invoice["id"],
            customer_email=invoice["customer_email"],
            attempt_count=invoice["attempt_count"],
        )
        send_mail(
            subject="We couldn't process your payment",
            message=render_to_string("emails/payment_failed.txt", {"notice": notice}),
            from_email=settings.BILLING_FROM_EMAIL,
            recipient_list=[notice.customer_email],
        )
    return HttpResponse(status=200)


@method_decorator(csrf_exempt, name="dispatch")
class ShopifyOrderCreateWebhook(View):
    def post(self, request):
        if not _valid_shopify_hmac(request):
            return HttpResponseForbidden()
        data = json.loads(request.body)
        order = ShopOrder.objects.create(
            shopify_id=data["id"],
            email=data.get("email", ""),
            total_price=data["total_price"],
            currency=data["currency"],
        )
        ShopOrderLine.objects.bulk_create(
            [ShopOrderLine(order=order, sku=li["sku"], quantity=li["quantity"], price=li["price"]) for li in data["line_items"]]
        )
        WebhookEvent.objects.create(
            webhook_id=request.headers["X-Shopify-Webhook-Id"],
            topic=request.headers.get("X-Shopify-Topic", "orders/create"),
        )
        return HttpResponse(status=200)


@csrf_exempt
@require_POST
def github_webhook(request):
    if not _valid_github_signature(request):
        return HttpResponseForbidden()
    _, created = WebhookDelivery.objects.get_or_create(
        delivery_id=request.headers["X-GitHub-Delivery"],
        defaults={"event": request.headers.get("X-GitHub-Event", "")},
    )
    if not created:
        return HttpResponse(status=202)
    payload = json.loads(request.body)
    if request.headers.get("X-GitHub-Event") == "push":
        run_ci_pipeline.delay(payload["repository"]["full_name"], payload["after"])
    return HttpResponse(status=202)


@csrf_exempt
@require_POST
def paddle_subscription_webhook(request):
    if not _valid_paddle_signature(request):
        return HttpResponseForbidden()
    data = json.loads(request.body)["data"]
    Subscription.objects.update_or_create(
        paddle_id=data["id"],
        defaults={
            "status": data["status"],
            "plan": data["items"][0]["price"]["id"],
            "current_period_end": parse_datetime(data["current_billing_period"]["ends_at"]),
        },
    )
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def carrier_tracking_webhook(request):
    token = request.headers.get("X-Carrier-Token", "")
    if not hmac.compare_digest(token, settings.CARRIER_WEBHOOK_TOKEN):
        return HttpResponseForbidden()
    update = json.loads(request.body)
    shipment = get_object_or_404(Shipment.objects.select_related("order"), tracking_number=update["tracking_number"])
    Shipment.objects.filter(pk=shipment.pk).update(carrier_status=update["status"], status_updated_at=timezone.now())
    if update["status"] == "DELIVERED":
        _notify_delivered(shipment)
    return JsonResponse({"ok": True})


class ContactView(FormView):
    template_name = "shop/contact.html"
    form_class = ContactForm
    success_url = reverse_lazy("shop:contact-thanks")

    def form_valid(self, form):
        req = ContactRequest.objects.create(**form.cleaned_data)
        send_mail(
            subject=f"[contact] {req.subject}",
            message=req.message,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[settings.SUPPORT_EMAIL],
        )
        return super().form_valid(form)
