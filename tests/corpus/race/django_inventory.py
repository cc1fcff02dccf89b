"""Storefront views: stock reservations, wishlists and coupon claims."""
from __future__ import annotations

import logging

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views import View
from django.views.decorators.http import require_GET, require_POST

from .models import Coupon, Product, ProductFollow, StockMovement, WishlistItem

log = logging.getLogger(__name__)

# Per-process popularity counter; a cron job ships it to analytics every hour.
VIEW_HITS: dict[str, int] = {}
LOW_STOCK_THRESHOLD = 5


def _quantity(request: HttpRequest) -> int | None:
    raw = request.POST.get("quantity", "1")
    if not raw.isdigit() or int(raw) <= 0:
        return None
    return int(raw)


@require_GET
def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku, active=True)
    VIEW_HITS[sku] = VIEW_HITS.get(sku, 0) + 1
    return render(request, "shop/product_detail.html", {"product": product})


@login_required
@require_POST
def reserve_stock(request: HttpRequest, sku: str) -> JsonResponse:
    qty = _quantity(request)
    if qty is None:
        return JsonResponse({"error": "invalid quantity"}, status=400)
    product = Product.objects.get(sku=sku)
    if product.stock < qty:
        return JsonResponse({"error": "insufficient stock", "available": product.stock}, status=409)
    product.stock -= qty
    product.save(update_fields=["stock"])
    StockMovement.objects.create(product=product, delta=-qty, actor=request.user, reason="reservation")
    return JsonResponse({"sku": sku, "remaining": product.stock})


@login_required
@require_POST
def reserve_stock_for_checkout(request: HttpRequest, sku: str) -> JsonResponse:
    qty = _quantity(request)
    if qty is None:
        return JsonResponse({"error": "invalid quantity"}, status=400)
    with transaction.atomic():
        product = Product.objects.select_for_update().get(sku=sku)
        if product.stock < qty:
            return JsonResponse({"error": "insufficient stock", "available": product.stock}, status=409)
        product.stock -= qty
        product.save(update_fields=["stock"])
        StockMovement.objects.create(product=product, delta=-qty, actor=request.user, reason="checkout")
    return JsonResponse({"sku": sku, "remaining": product.stock})


@staff_member_required
@require_POST
def restock(request: HttpRequest, sku: str) -> JsonResponse:
    qty = _quantity(request)
    if qty is None:
        return JsonResponse({"error": "invalid quantity"}, status=400)
    updated = Product.objects.filter(sku=sku).update(stock=F("stock") + qty, restocked_at=timezone.now())
    if not updated:
        return JsonResponse({"error": "unknown sku"}, status=404)
    product = Product.objects.only("pk", "sku").get(sku=sku)
    StockMovement.objects.create(product=product, delta=qty, actor=request.user, reason="restock")
    return JsonResponse({"sku": sku, "added": qty})


@staff_member_required
@require_POST
def rename_product(request: HttpRequest, sku: str) -> JsonResponse:
    product = get_object_or_404(Product, sku=sku)
    product.name = request.POST["name"].strip()
    product.updated_at = timezone.now()
    product.save(update_fields=["name", "updated_at"])
    return JsonResponse({"sku": sku, "name": product.name})


@login_required
@require_POST
def add_to_wishlist(request: HttpRequest, sku: str) -> JsonResponse:
    product = get_object_or_404(Product, sku=sku, active=True)
    if not WishlistItem.objects.filter(user=request.user, product=product).exists():
        WishlistItem.objects.create(user=request.user, product=product, added_at=timezone.now())
    return JsonResponse({"sku": sku, "wishlisted": True})


@login_required
@require_POST
def follow_product(request: HttpRequest, sku: str) -> JsonResponse:
    product = get_object_or_404(Product, sku=sku, active=True)
    follow, created = ProductFollow.objects.get_or_create(
        user=request.user, product=product, defaults={"notify_restock": True}
    )
    return JsonResponse({"sku": sku, "following": True, "new": created, "notify": follow.notify_restock})


@login_required
@require_POST
def claim_coupon(request: HttpRequest, code: str) -> JsonResponse:
    coupon = Coupon.objects.filter(code=code.upper()).first()
    if coupon is None:
        return JsonResponse({"error": "unknown coupon"}, status=404)
    if coupon.status != Coupon.AVAILABLE:
        return JsonResponse({"error": "coupon already claimed"}, status=409)
    coupon.status = Coupon.CLAIMED
    coupon.claimed_by = request.user
    coupon.claimed_at = timezone.now()
    coupon.save()
    log.info("coupon %s claimed by %s", coupon.code, request.user.pk)
    return JsonResponse({"code": coupon.code, "discount": str(coupon.discount)})


@login_required
@require_POST
def claim_coupon_once(request: HttpRequest, code: str) -> JsonResponse:
    claimed = Coupon.objects.filter(code=code.upper(), status=Coupon.AVAILABLE).update(
        status=Coupon.CLAIMED, claimed_by=request.user, claimed_at=timezone.now()
    )
    if claimed == 0:
        return JsonResponse({"error": "coupon unavailable"}, status=409)
    coupon = Coupon.objects.get(code=code.upper())
    return JsonResponse({"code": coupon.code, "discount": str(coupon.discount)})


class LowStockReportView(View):
    template_name = "shop/low_stock.html"

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.flagged = 0

    def get(self, request: HttpRequest) -> HttpResponse:
        rows = []
        for product in Product.objects.filter(active=True).only("sku", "name", "stock"):
            if product.stock <= LOW_STOCK_THRESHOLD:
                self.flagged += 1
                rows.append({"sku": product.sku, "name": product.name, "stock": product.stock})
        return render(request, self.template_name, {"rows": rows, "flagged": self.flagged})


class StockAdjustmentView(View):
    def post(self, request: HttpRequest, sku: str) -> JsonResponse:
        delta = int(request.POST.get("delta", "0"))
        with transaction.atomic():
            updated = Product.objects.filter(sku=sku, stock__gte=-delta).update(stock=F("stock") + delta)
            if not updated:
                return JsonResponse({"error": "adjustment would make stock negative"}, status=409)
            StockMovement.objects.create(
                product=Product.objects.get(sku=sku), delta=delta, actor=request.user, reason="manual"
            )
        return JsonResponse({"sku": sku, "delta": delta})
