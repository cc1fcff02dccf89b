"""Invoice API (Django REST framework)."""
import logging
from decimal import Decimal
from smtplib import SMTPException

import requests
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from billing import tax_client, webhooks
from billing.mailer import send_invoice_email
from billing.models import Invoice, LineItem
from billing.providers import ProviderError, void_remote_invoice

log = logging.getLogger("billing.api")

FALLBACK_RATE = Decimal("1.0")
FX_ENDPOINT = "https://fx.internal.example.com/v2/rates"


def exchange_rate(currency: str) -> Decimal:
    if currency == settings.BASE_CURRENCY:
        return Decimal("1")
    try:
        resp = requests.get(FX_ENDPOINT, params={"from": currency, "to": settings.BASE_CURRENCY}, timeout=3)
        resp.raise_for_status()
        return Decimal(str(resp.json()["rate"]))
    except requests.RequestException as exc:
        log.warning("fx lookup for %s failed (%s), using fallback rate", currency, exc)
        return FALLBACK_RATE


class LineItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = LineItem
        fields = ["id", "description", "quantity", "unit_price"]


class InvoiceSerializer(serializers.ModelSerializer):
    lines = LineItemSerializer(many=True, read_only=True)
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = ["id", "number", "currency", "total", "tax_total", "status", "lines", "pdf_url"]

    def get_pdf_url(self, obj: Invoice) -> str:
        try:
            return default_storage.url(obj.pdf_key)
        except Exception:
            return ""


def maybe_po_number(payload: dict) -> str | None:
    """The PO field is free-form and optional; anything unusable is treated as absent."""
    try:
        return str(payload["purchase_order"]["number"]).strip() or None
    except Exception:
        return None


class InvoiceViewSet(viewsets.ModelViewSet):
    serializer_class = InvoiceSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return Invoice.objects.filter(account=self.request.user.account).prefetch_related("lines")

    def perform_create(self, serializer):
        invoice = serializer.save(
            account=self.request.user.account,
            po_number=maybe_po_number(self.request.data),
        )
        try:
            invoice.tax_total = tax_client.compute(invoice)
            invoice.total = invoice.subtotal + invoice.tax_total
        except Exception:
            log.exception("tax computation failed for invoice %s", invoice.pk)
        invoice.save(update_fields=["tax_total", "total"])
        webhooks.emit("invoice.created", invoice.pk)

    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        invoice = self.get_object()
        try:
            send_invoice_email(invoice, to=invoice.account.billing_email)
        except SMTPException:
            log.exception("sending invoice %s failed", invoice.pk)
            return Response(
                {"detail": "mail server unavailable, try again later"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        invoice.mark_sent()
        return Response({"status": "sent"})

    @action(detail=False, methods=["post"], url_path="bulk-send")
    def bulk_send(self, request):
        failures = []

        def _send_one(invoice):
            try:
                send_invoice_email(invoice, to=invoice.account.billing_email)
                invoice.mark_sent()
            except Exception as exc:
                failures.append({"id": invoice.pk, "error": str(exc)})

        for invoice in self.get_queryset().filter(pk__in=request.data.get("ids", [])):
            _send_one(invoice)
        code = status.HTTP_207_MULTI_STATUS if failures else status.HTTP_200_OK
        return Response({"failed": failures}, status=code)

    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        invoice = self.get_object()
        with transaction.atomic():
            invoice.status = Invoice.Status.VOID
            invoice.save(update_fields=["status"])
            try:
                void_remote_invoice(invoice.provider_ref)
            except ProviderError as e:
                raise ValidationError({"detail": f"provider refused to void: {e.code}"}) from e
        return Response(self.get_serializer(invoice).data)

    @action(detail=True, methods=["get"])
    def converted(self, request, pk=None):
        invoice = self.get_object()
        rate = exchange_rate(invoice.currency)
        return Response({"total": str(invoice.total * rate), "currency": settings.BASE_CURRENCY})
