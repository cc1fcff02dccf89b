"""manage.py reconcile_stock: nightly single-writer reconciliation of stock counts.

Run by the ops cron on one host only (see deploy/cron.d/reconcile); never from web workers.
"""
from __future__ import annotations

import json
import os

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.utils import timezone

from shop.models import Product, StockMovement, Warehouse

REPORT_DIR = os.environ.get("RECONCILE_REPORT_DIR", "/var/lib/shop/reconcile")
DEFAULT_WAREHOUSES = [("MAIN", "Main warehouse"), ("RET", "Returns")]


class Command(BaseCommand):
    help = "Recompute product stock from the movement ledger and write a drift report."
    runs = 0

    def add_arguments(self, parser):
        parser.add_argument("--sku", action="append", default=[], help="limit to these SKUs")
        parser.add_argument("--dry-run", action="store_true")

    def _ensure_warehouses(self) -> int:
        created = 0
        for code, name in DEFAULT_WAREHOUSES:
            if not Warehouse.objects.filter(code=code).exists():
                Warehouse.objects.create(code=code, name=name)
                created += 1
        return created

    def _apply_drift(self, sku: str, drift: int, dry_run: bool) -> None:
        product = Product.objects.get(sku=sku)
        product.stock = product.stock + drift
        product.reconciled_at = timezone.now()
        if not dry_run:
            product.save(update_fields=["stock", "reconciled_at"])

    def _write_report(self, drifts: dict[str, int]) -> str:
        if not os.path.exists(REPORT_DIR):
            os.makedirs(REPORT_DIR)
        path = os.path.join(REPORT_DIR, "history.json")
        history = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                history = json.load(fh)
        history.append({"at": timezone.now().isoformat(), "drifts": drifts})
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(history[-90:], fh, indent=2)
        return path

    def handle(self, *args, **options):
        Command.runs += 1
        created = self._ensure_warehouses()
        if created:
            self.stdout.write(f"created {created} default warehouse(s)")
        products = Product.objects.all()
        if options["sku"]:
            products = products.filter(sku__in=options["sku"])
        if not products.exists():
            raise CommandError("no matching products")
        drifts: dict[str, int] = {}
        for product in products.only("sku", "stock"):
            ledger = StockMovement.objects.filter(product=product).aggregate(total=Sum("delta"))["total"] or 0
            drift = ledger - product.stock
            if drift:
                drifts[product.sku] = drift
                self._apply_drift(product.sku, drift, options["dry_run"])
        path = self._write_report(drifts)
        self.stdout.write(self.style.SUCCESS(f"{len(drifts)} product(s) drifted; report in {path}"))
