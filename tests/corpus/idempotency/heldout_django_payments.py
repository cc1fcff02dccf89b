"""Payment services and endpoints: Stripe renewals/refunds/payouts, Braintree, Adyen, provider webhooks."""
from __future__ import annotations

import logging
import secrets
from decimal import Decimal

import backoff
import braintree
import requests
import stripe
from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from requests.adapters import HTTPAdapter, Retry
from rest_framework import status
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from payments.models import Order, Payment, ProcessedWebhook, RefundRecord, StripeCustomer, Subscription

logger = logging.getLogger(__name__)

stripe.api_key = settings.STRIPE_SECRET_KEY
gateway = braintree.BraintreeGateway(
    braintree.Configuration(
        environment=braintree.Environment.Production if settings.BRAINTREE_LIVE else braintree.Environment.Sandbox,
        merchant_id=settings.BRAINTREE_MERCHANT_ID,
        public_key=settings.BRAINTREE_PUBLIC_KEY,
        private_key=settings.BRAINTREE_PRIVATE_KEY,
    )
)

_stripe_transient = retry_if_exception_type((stripe.error.APIConnectionError, stripe.error.RateLimitError))
_braintree_transient = (
    braintree.exceptions.ServiceUnavailableError,
    braintree.exceptions.GatewayTimeoutError,
    braintree.exceptions.TooManyRequestsError,
)


class PaymentFailed(Exception):
    pass


@retry(retry=_stripe_transient, stop=stop_after_attempt(4), wait=wait_random_exponential(max=20), reraise=True)
def charge_renewal(subscription: Subscription) -> stripe.PaymentIntent:
    period = subscription.current_period_end.strftime("%Y%m%d")
    return stripe.PaymentIntent.create(
        amount=subscription.plan.amount_cents,
        currency=subscription.plan.currency,
        customer=subscription.customer.stripe_id,
        payment_method=subscription.customer.default_payment_method,
        off_session=True,
        confirm=True,
        metadata={"subscription": subscription.pk},
        idempotency_key=f"renewal-{subscription.pk}-{period}",
    )


@retry(retry=_stripe_transient, stop=stop_after_attempt(3), wait=wait_random_exponential(max=10), reraise=True)
def refund_order(order: Order, amount_cents: int, reason: str) -> RefundRecord:
    refund = stripe.Refund.create(
        payment_intent=order.payment_intent_id,
        amount=amount_cents,
        reason=reason,
        metadata={"order": order.number},
    )
    return RefundRecord.objects.create(order=order, stripe_refund_id=refund.id, amount_cents=amount_cents, status=refund.status)


@retry(retry=_stripe_transient, stop=stop_after_attempt(5), wait=wait_random_exponential(max=30), reraise=True)
def pay_out_to_seller(order: Order) -> str:
    seller_share = order.total_cents - order.platform_fee_cents
    transfer = stripe.Transfer.create(
        amount=seller_share,
        currency=order.currency,
        destination=order.seller.stripe_account_id,
        transfer_group=f"order-{order.number}",
        metadata={"order": order.number},
    )
    logger.info("transferred %s %s to seller %s", seller_share, order.currency, order.seller_id)
    return transfer.id


@retry(retry=_stripe_transient, stop=stop_after_attempt(5), wait=wait_random_exponential(max=15), reraise=True)
def sync_stripe_customer(stripe_id: str) -> StripeCustomer:
    remote = stripe.Customer.retrieve(stripe_id, expand=["invoice_settings.default_payment_method"])
    pm = remote.invoice_settings.default_payment_method
    local, _ = StripeCustomer.objects.update_or_create(
        stripe_id=stripe_id,
        defaults={"email": remote.email, "card_last4": pm.card.last4 if pm else "", "delinquent": remote.delinquent},
    )
    return local


@backoff.on_exception(backoff.expo, _braintree_transient, max_tries=4, jitter=backoff.full_jitter)
def charge_vaulted_card(customer_id: str, amount: Decimal, order_number: str) -> str:
    result = gateway.transaction.sale(
        {
            "customer_id": customer_id,
            "amount": str(amount),
            "order_id": order_number,
            "options": {"submit_for_settlement": True},
        }
    )
    if not result.is_success:
        raise PaymentFailed(result.message)
    return result.transaction.id


class AdyenCheckout:
    def __init__(self, api_key: str, merchant_account: str, base_url: str = "https://checkout-test.adyen.com/v71"):
        self.merchant_account = merchant_account
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update({"X-API-Key": api_key, "Content-Type": "application/json"})
        policy = Retry(total=3, backoff_factor=0.4, status_forcelist=(500, 502, 503, 504), allowed_methods=frozenset({"GET", "POST"}))
        self.session.mount("https://", HTTPAdapter(max_retries=policy))

    def _post(self, path: str, body: dict, idempotency_key: str) -> dict:
        resp = self.session.post(f"{self.base_url}{path}", json=body, headers={"Idempotency-Key": idempotency_key}, timeout=15)
        resp.raise_for_status()
        return resp.json()

    @retry(retry=retry_if_exception_type(requests.ConnectionError), stop=stop_after_attempt(3), reraise=True)
    def capture(self, psp_reference: str, amount_minor: int, currency: str) -> str:
        body = {"merchantAccount": self.merchant_account, "amount": {"value": amount_minor, "currency": currency}}
        result = self._post(f"/payments/{psp_reference}/captures", body, idempotency_key=f"capture-{psp_reference}-{amount_minor}")
        return result["pspReference"]

    @retry(retry=retry_if_exception_type(requests.ConnectionError), stop=stop_after_attempt(3), reraise=True)
    def refund(self, psp_reference: str, amount_minor: int, currency: str) -> str:
        body = {"merchantAccount": self.merchant_account, "amount": {"value": amount_minor, "currency": currency}}
        result = self._post(f"/payments/{psp_reference}/refunds", body, idempotency_key=secrets.token_urlsafe(24))
        return result["pspReference"]


class BraintreeCheckoutView(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request):
        nonce = request.data.get("payment_method_nonce")
        if not nonce:
            return Response({"detail": "payment_method_nonce is required"}, status=status.HTTP_400_BAD_REQUEST)
        order = get_object_or_404(Order, number=request.data.get("order"), customer=request.user)
        result = gateway.transaction.sale(
            {"amount": str(order.total), "payment_method_nonce": nonce, "order_id": order.number,
             "options": {"submit_for_settlement": True}}
        )
        if not result.is_success:
            return Response({"detail": result.message}, status=status.HTTP_402_PAYMENT_REQUIRED)
        Payment.objects.create(order=order, provider="braintree", reference=result.transaction.id, amount=order.total)
        return Response({"transaction": result.transaction.id}, status=status.HTTP_201_CREATED)


class RefundView(APIView):
    permission_classes = [IsAdminUser]

    def post(self, request, number: str):
        order = get_object_or_404(Order, number=number)
        amount = int(request.data.get("amount_cents", order.total_cents))
        if amount <= 0 or amount > order.total_cents:
            return Response({"detail": "invalid refund amount"}, status=status.HTTP_400_BAD_REQUEST)
        try:
            record = refund_order(order, amount, request.data.get("reason", "requested_by_customer"))
        except stripe.error.InvalidRequestError as exc:
            return Response({"detail": exc.user_message or str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"refund": record.stripe_refund_id, "status": record.status}, status=status.HTTP_201_CREATED)


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
        order = Order.objects.get(number=session["client_reference_id"])
        Payment.objects.create(
            order=order, provider="stripe", reference=session["payment_intent"], amount=Decimal(session["amount_total"]) / 100
        )
        send_mail(
            "Payment received",
            f"We received your payment for order {order.number}.",
            settings.DEFAULT_FROM_EMAIL,
            [session["customer_details"]["email"]],
        )
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def braintree_webhook(request):
    try:
        notification = gateway.webhook_notification.parse(request.POST["bt_signature"], request.POST["bt_payload"])
    except (KeyError, braintree.exceptions.InvalidSignatureError):
        return HttpResponseBadRequest("bad signature")
    if notification.kind != braintree.WebhookNotification.Kind.SubscriptionChargedSuccessfully:
        return HttpResponse(status=200)
    txn = notification.subscription.transactions[0]
    _, first_delivery = ProcessedWebhook.objects.get_or_create(provider="braintree", event_id=f"{notification.kind}:{txn.id}")
    if not first_delivery:
        return HttpResponse(status=200)
    sub = Subscription.objects.select_related("customer").get(braintree_id=notification.subscription.id)
    Payment.objects.create(subscription=sub, provider="braintree", reference=txn.id, amount=txn.amount)
    send_mail("Subscription renewed", f"Your {sub.plan_name} plan was renewed.", settings.DEFAULT_FROM_EMAIL, [sub.customer.email])
    return HttpResponse(status=200)
