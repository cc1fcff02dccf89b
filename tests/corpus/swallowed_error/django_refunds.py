"""Customer refunds: the self-service refund endpoint plus the staff batch tools."""
from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import Sum
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone
from django.views import View

from loyalty.services import adjust_points
from orders.models import Order, Refund
from payments.gateway import GatewayError, PaymentGateway

logger = logging.getLogger(__name__)

REFUND_WINDOW_DAYS = 30


class RefundError(Exception):
    """A refund could not be issued."""


@dataclass
class RefundBatchResult:
    refunded: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def refundable_amount(order: Order) -> Decimal:
    already = order.refunds.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return order.total - already


def issue_refund(order: Order, amount: Decimal, reason: str = "") -> Refund:
    if amount <= 0 or amount > refundable_amount(order):
        raise RefundError(f"invalid refund amount {amount} for order {order.pk}")
    gateway = PaymentGateway(settings.PAYMENT_GATEWAY_KEY)
    try:
        with transaction.atomic():
            refund = Refund.objects.create(order=order, amount=amount, reason=reason)
            refund.gateway_id = gateway.refund(order.charge_id, amount)
            refund.save(update_fields=["gateway_id"])
    except DatabaseError:
        logger.exception("could not persist refund for order %s", order.pk)
        raise
    return refund


def notify_customer_of_refund(refund: Refund) -> None:
    body = render_to_string("emails/refund_issued.txt", {"refund": refund})
    try:
        send_mail(
            subject=f"Your refund for order #{refund.order.number}",
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[refund.order.customer.email],
        )
    except Exception as e:
        logger.warning(f"refund email for {refund.pk} not sent: {e}")


def revoke_loyalty_points(refund: Refund) -> None:
    points = int(refund.amount * settings.LOYALTY_POINTS_PER_UNIT)
    with suppress(Exception):
        adjust_points(refund.order.customer_id, -points, reason=f"refund {refund.pk}")


class RefundView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest, order_id: int) -> JsonResponse:
        order = get_object_or_404(Order, pk=order_id, customer=request.user)
        if (timezone.now() - order.placed_at).days > REFUND_WINDOW_DAYS:
            return JsonResponse({"error": "refund window has closed"}, status=400)
        try:
            refund = issue_refund(order, refundable_amount(order), reason="customer request")
        except RefundError as e:
            return JsonResponse({"error": str(e)}, status=400)
        except GatewayError:
            logger.warning("gateway rejected refund for order %s", order.pk, exc_info=True)
            return JsonResponse({"error": "payment provider unavailable"}, status=502)
        except Exception:
            logger.exception("unexpected refund failure for order %s", order.pk)
            return JsonResponse({"error": "internal error"}, status=500)
        notify_customer_of_refund(refund)
        return JsonResponse({"refund_id": refund.pk, "amount": str(refund.amount)}, status=201)


def bulk_refund_cancelled_orders(order_ids: list[int]) -> int:
    refunded = 0
    for order in Order.objects.filter(pk__in=order_ids, status=Order.Status.CANCELLED):
        try:
            issue_refund(order, refundable_amount(order), reason="order cancelled")
        except Exception as exc:
            logger.warning("refund for cancelled order %s failed: %s", order.pk, exc)
            continue
        refunded += 1
    return refunded


def refund_selected_orders(order_ids: list[int], reason: str) -> RefundBatchResult:
    """Staff action. Failures are returned to the admin so they can be retried by hand."""
    result = RefundBatchResult()
    for order in Order.objects.filter(pk__in=order_ids):
        try:
            refund = issue_refund(order, refundable_amount(order), reason=reason)
        except Exception as exc:
            logger.exception("staff refund for order %s failed", order.pk)
            result.failed.append((order.pk, str(exc)))
            continue
        result.refunded.append(refund.pk)
    return result


def get_refund_summary(order_id: int) -> dict:
    try:
        order = Order.objects.select_related("customer").get(pk=order_id)
        refunds = list(order.refunds.values("pk", "amount", "created_at"))
        return {
            "order": order.number,
            "refunded_total": str(sum((r["amount"] for r in refunds), Decimal("0"))),
            "refunds": refunds,
        }
    except Exception:
        logger.exception("failed to build refund summary for %s", order_id)
        return {}


def pending_refund_total(merchant_id: int) -> Decimal:
    try:
        agg = Refund.objects.filter(
            order__merchant_id=merchant_id, settled_at__isnull=True
        ).aggregate(total=Sum("amount"))
    except DatabaseError as e:
        logger.warning("pending refund total unavailable for merchant %s: %s", merchant_id, e)
        return 0
    return agg["total"] or Decimal("0")


@transaction.atomic
def mark_refund_settled(refund_id: int, settled_at=None) -> bool:
    try:
        refund = Refund.objects.select_for_update().get(pk=refund_id)
    except Refund.DoesNotExist:
        return False
    refund.settled_at = settled_at or timezone.now()
    refund.save(update_fields=["settled_at"])
    return True
