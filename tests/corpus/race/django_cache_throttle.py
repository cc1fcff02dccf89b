"""Account views throttled through the Django cache, plus cached storefront widgets."""
from __future__ import annotations

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import get_template
from django.views.decorators.http import require_GET, require_POST

from .models import Category, Product
from .tasks import build_export, build_import

MAX_LOGIN_FAILURES = 5
_WIDGET_TEMPLATES: dict[str, object] = {}


def _client_ip(request: HttpRequest) -> str:
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.split(",")[0].strip() or request.META.get("REMOTE_ADDR", "")


def _summarize(slug: str) -> dict:
    agg = Product.objects.filter(category__slug=slug, active=True).aggregate(n=Count("pk"), stock=Sum("stock"))
    return {"slug": slug, "products": agg["n"], "stock": agg["stock"] or 0}


@require_POST
def login_view(request: HttpRequest) -> JsonResponse:
    key = f"login-failures:{_client_ip(request)}"
    failures = cache.get(key, 0)
    if failures >= MAX_LOGIN_FAILURES:
        return JsonResponse({"error": "too many attempts"}, status=429)
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        cache.set(key, failures + 1, timeout=900)
        return JsonResponse({"error": "invalid credentials"}, status=401)
    cache.delete(key)
    login(request, user)
    return JsonResponse({"ok": True})


@require_POST
def password_reset_request(request: HttpRequest) -> JsonResponse:
    key = f"pw-reset:{_client_ip(request)}"
    cache.add(key, 0, timeout=3600)
    attempts = cache.incr(key)
    if attempts > 3:
        return JsonResponse({"error": "try again later"}, status=429)
    return JsonResponse({"sent": True})


@login_required
@require_POST
def start_export(request: HttpRequest) -> JsonResponse:
    lock_key = f"export-running:{request.user.pk}"
    if cache.get(lock_key):
        return JsonResponse({"error": "an export is already running"}, status=409)
    cache.set(lock_key, True, timeout=600)
    build_export.delay(request.user.pk)
    return JsonResponse({"queued": True}, status=202)


@login_required
@require_POST
def start_import(request: HttpRequest) -> JsonResponse:
    lock_key = f"import-running:{request.user.pk}"
    if not cache.add(lock_key, True, timeout=600):
        return JsonResponse({"error": "an import is already running"}, status=409)
    build_import.delay(request.user.pk, request.POST["source"])
    return JsonResponse({"queued": True}, status=202)


@require_GET
def category_summary(request: HttpRequest, slug: str) -> JsonResponse:
    summary = cache.get_or_set(f"category-summary:{slug}", lambda: _summarize(slug), timeout=300)
    return JsonResponse(summary)


@require_GET
def featured_products(request: HttpRequest) -> JsonResponse:
    data = cache.get("featured-products")
    if data is None:
        data = list(Product.objects.filter(featured=True, active=True).values("sku", "name", "price")[:12])
        cache.set("featured-products", data, timeout=300)
    return JsonResponse({"items": data})


@require_GET
def render_widget(request: HttpRequest, name: str) -> HttpResponse:
    if name not in _WIDGET_TEMPLATES:
        _WIDGET_TEMPLATES[name] = get_template(f"widgets/{name}.html")
    template = _WIDGET_TEMPLATES[name]
    return HttpResponse(template.render({"categories": Category.objects.filter(visible=True)}, request))


@require_GET
def category_menu(request: HttpRequest) -> HttpResponse:
    template = _WIDGET_TEMPLATES.setdefault("menu", get_template("widgets/menu.html"))
    return HttpResponse(template.render({"categories": Category.objects.filter(visible=True)}, request))
