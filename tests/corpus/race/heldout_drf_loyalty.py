"""Loyalty programme API (Django REST framework).

Balances live on ``LoyaltyAccount``; redemptions are also reported to the
external points gateway, which bills partners for the points they fund.
"""
from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.gateway import PointsGatewayClient

log = logging.getLogger(__name__)

_gateway: PointsGatewayClient | None = None


class LoyaltyAccount(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="loyalty")
    points = models.PositiveIntegerField(default=0)
    lifetime_points = models.PositiveIntegerField(default=0)
    nickname = models.CharField(max_length=60, blank=True)
    birthday_bonus_year = models.PositiveSmallIntegerField(null=True, blank=True)


class StoreVisit(models.Model):
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="visits")
    store_code = models.CharField(max_length=16)
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "store_code", "day"], name="one_visit_per_store_per_day")
        ]


class FavouriteStore(models.Model):
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="favourites")
    store_code = models.CharField(max_length=16)

    class Meta:
        unique_together = [("account", "store_code")]


class ReferralCode(models.Model):
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="referral_codes")
    code = models.CharField(max_length=16, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LoyaltyAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = LoyaltyAccount
        fields = ["id", "points", "lifetime_points", "nickname"]


class ProfileSerializer(serializers.Serializer):
    nickname = serializers.CharField(max_length=60, allow_blank=True)


def gateway() -> PointsGatewayClient:
    global _gateway
    if _gateway is None:
        _gateway = PointsGatewayClient(
            base_url=settings.POINTS_GATEWAY_URL, api_key=settings.POINTS_GATEWAY_KEY, pool_size=10
        )
    return _gateway


def redeem_points(account_id: int, points: int, reason: str) -> LoyaltyAccount:
    account = LoyaltyAccount.objects.get(pk=account_id)
    if account.points < points:
        raise ValidationError({"points": "insufficient balance"})
    account.points -= points
    account.save(update_fields=["points"])
    gateway().record_redemption(account.user_id, points, reason)
    return account


def award_points(account_id: int, points: int) -> None:
    updated = LoyaltyAccount.objects.filter(pk=account_id).update(
        points=F("points") + points, lifetime_points=F("lifetime_points") + points
    )
    if not updated:
        raise NotFound("no such loyalty account")


def transfer_points(source_id: int, target_id: int, points: int) -> None:
    with transaction.atomic():
        locked = LoyaltyAccount.objects.select_for_update().filter(pk__in=[source_id, target_id]).order_by("pk")
        accounts = {acct.pk: acct for acct in locked}
        source, target = accounts.get(source_id), accounts.get(target_id)
        if source is None or target is None:
            raise NotFound("no such loyalty account")
        if source.points < points:
            raise ValidationError({"points": "insufficient balance"})
        source.points -= points
        target.points += points
        source.save(update_fields=["points"])
        target.save(update_fields=["points"])


def tier_for(account: LoyaltyAccount) -> str:
    key = f"loyalty:tier:{account.pk}:{account.lifetime_points}"
    tier = cache.get(key)
    if tier is None:
        tier = gateway().compute_tier(account.lifetime_points)
        cache.set(key, tier, timeout=3600)
    return tier


def issue_referral_code(account: LoyaltyAccount) -> ReferralCode:
    throttle_key = f"loyalty:referral-issue:{account.pk}"
    if cache.get(throttle_key):
        raise Throttled(wait=60, detail="a referral code was issued in the last minute")
    cache.set(throttle_key, True, timeout=60)
    return ReferralCode.objects.create(account=account, code=secrets.token_urlsafe(9)[:12])


def note_failed_redemption(account_id: int) -> int:
    key = f"loyalty:failed-redeem:{account_id}"
    cache.add(key, 0, timeout=900)
    failures = cache.incr(key)
    if failures >= 5:
        log.warning("loyalty account %s: %d failed redemptions in 15 minutes", account_id, failures)
    return failures


class LoyaltyAccountViewSet(viewsets.GenericViewSet):
    serializer_class = LoyaltyAccountSerializer
    permission_classes = [IsAuthenticated]
    queryset = LoyaltyAccount.objects.select_related("user")
    served = 0

    def get_queryset(self):
        return super().get_queryset().filter(user=self.request.user)

    def retrieve(self, request, pk=None):
        LoyaltyAccountViewSet.served += 1
        account = self.get_object()
        data = dict(self.get_serializer(account).data)
        data["tier"] = tier_for(account)
        return Response(data)

    @action(detail=False, methods=["post"])
    def enroll(self, request):
        if LoyaltyAccount.objects.filter(user=request.user).exists():
            return Response({"detail": "already enrolled"}, status=409)
        account = LoyaltyAccount.objects.create(user=request.user, points=settings.LOYALTY_WELCOME_POINTS)
        return Response(self.get_serializer(account).data, status=201)

    @action(detail=True, methods=["post"])
    def redeem(self, request, pk=None):
        account = self.get_object()
        points = int(request.data.get("points", 0))
        if points <= 0:
            raise ValidationError({"points": "must be positive"})
        try:
            account = redeem_points(account.pk, points, reason=request.data.get("reason", "catalogue"))
        except ValidationError:
            note_failed_redemption(account.pk)
            raise
        return Response({"points": account.points})

    @action(detail=True, methods=["post"], url_path="check-in")
    def check_in(self, request, pk=None):
        account = self.get_object()
        store_code = str(request.data.get("store", "")).upper()
        if not store_code:
            raise ValidationError({"store": "required"})
        try:
            with transaction.atomic():
                StoreVisit.objects.create(account=account, store_code=store_code, day=timezone.localdate())
        except IntegrityError:
            return Response({"detail": "already checked in at this store today", "awarded": 0})
        award_points(account.pk, settings.LOYALTY_VISIT_POINTS)
        return Response({"awarded": settings.LOYALTY_VISIT_POINTS}, status=201)

    @action(detail=True, methods=["post"])
    def favourite(self, request, pk=None):
        account = self.get_object()
        store_code = str(request.data.get("store", "")).upper()
        if not store_code:
            raise ValidationError({"store": "required"})
        fav, created = FavouriteStore.objects.get_or_create(account=account, store_code=store_code)
        return Response({"store": fav.store_code}, status=201 if created else 200)

    @action(detail=True, methods=["patch"])
    def profile(self, request, pk=None):
        account = self.get_object()
        serializer = ProfileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account.nickname = serializer.validated_data["nickname"]
        account.save(update_fields=["nickname"])
        return Response({"nickname": account.nickname})

    @action(detail=True, methods=["post"])
    def refer(self, request, pk=None):
        code = issue_referral_code(self.get_object())
        return Response({"code": code.code}, status=201)


class BirthdayBonusView(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request):
        account = LoyaltyAccount.objects.get(user=request.user)
        today = timezone.localdate()
        if account.birthday_bonus_year == today.year:
            return Response({"detail": "birthday bonus already claimed this year"}, status=409)
        account.birthday_bonus_year = today.year
        account.points = account.points + settings.LOYALTY_BIRTHDAY_POINTS
        account.save(update_fields=["birthday_bonus_year", "points"])
        return Response({"points": account.points})
