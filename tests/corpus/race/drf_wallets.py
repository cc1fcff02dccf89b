"""Wallet, loyalty and voucher endpoints for the mobile API."""
from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import LoyaltyAccount, NotificationPreference, Redemption, Voucher, Wallet, WalletEntry
from .serializers import AmountSerializer, NicknameSerializer, WalletSerializer


class WalletViewSet(viewsets.ModelViewSet):
    serializer_class = WalletSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return Wallet.objects.filter(owner=self.request.user).order_by("currency")

    @action(detail=True, methods=["post"])
    def deposit(self, request, pk=None):
        body = AmountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        amount: Decimal = body.validated_data["amount"]
        wallet = Wallet.objects.get(pk=pk, owner=request.user)
        wallet.balance += amount
        wallet.save(update_fields=["balance"])
        WalletEntry.objects.create(wallet=wallet, amount=amount, kind="deposit")
        return Response({"balance": str(wallet.balance)})

    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        body = AmountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        amount: Decimal = body.validated_data["amount"]
        with transaction.atomic():
            wallet = Wallet.objects.select_for_update().get(pk=pk, owner=request.user)
            if wallet.balance < amount:
                return Response({"detail": "insufficient funds"}, status=status.HTTP_409_CONFLICT)
            wallet.balance -= amount
            wallet.save(update_fields=["balance"])
            WalletEntry.objects.create(wallet=wallet, amount=-amount, kind="withdrawal")
        return Response({"balance": str(wallet.balance)})

    @action(detail=False, methods=["post"], url_path="open")
    def open_account(self, request):
        currency = request.data.get("currency", "EUR").upper()
        if Wallet.objects.filter(owner=request.user, currency=currency).exists():
            return Response({"detail": f"{currency} wallet already exists"}, status=status.HTTP_409_CONFLICT)
        wallet = Wallet.objects.create(owner=request.user, currency=currency, balance=Decimal("0"))
        return Response(WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)


class TransferView(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request):
        body = AmountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        amount = body.validated_data["amount"]
        source_id, target_id = request.data["source"], request.data["target"]
        with transaction.atomic():
            debited = Wallet.objects.filter(pk=source_id, owner=request.user, balance__gte=amount).update(
                balance=F("balance") - amount
            )
            if debited != 1:
                return Response({"detail": "insufficient funds"}, status=status.HTTP_409_CONFLICT)
            credited = Wallet.objects.filter(pk=target_id).update(balance=F("balance") + amount)
            if credited != 1:
                transaction.set_rollback(True)
                raise NotFound("target wallet not found")
            WalletEntry.objects.bulk_create(
                [
                    WalletEntry(wallet_id=source_id, amount=-amount, kind="transfer"),
                    WalletEntry(wallet_id=target_id, amount=amount, kind="transfer"),
                ]
            )
        return Response({"transferred": str(amount)})


class RedeemVoucherView(GenericAPIView):
    permission_classes = [IsAuthenticated]

    def post(self, request, code):
        voucher = Voucher.objects.filter(code=code, active=True).first()
        if voucher is None:
            raise NotFound("unknown voucher")
        try:
            Redemption.objects.get(voucher=voucher, user=request.user)
        except Redemption.DoesNotExist:
            Redemption.objects.create(voucher=voucher, user=request.user, redeemed_at=timezone.now())
            return Response({"redeemed": voucher.code}, status=status.HTTP_201_CREATED)
        return Response({"detail": "already redeemed"}, status=status.HTTP_200_OK)


class ApplyReferralView(GenericAPIView):
    permission_classes = [IsAuthenticated]

    def post(self, request, code):
        voucher = Voucher.objects.filter(code=code, kind="referral", active=True).first()
        if voucher is None:
            raise NotFound("unknown referral code")
        if Redemption.objects.filter(voucher=voucher, user=request.user).exists():
            return Response({"detail": "already applied"}, status=status.HTTP_200_OK)
        try:
            with transaction.atomic():
                Redemption.objects.create(voucher=voucher, user=request.user, redeemed_at=timezone.now())
        except IntegrityError:
            return Response({"detail": "already applied"}, status=status.HTTP_200_OK)
        return Response({"applied": voucher.code}, status=status.HTTP_201_CREATED)


class LoyaltyPointsView(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request):
        earned = int(request.data["points"])
        account = LoyaltyAccount.objects.get(user=request.user)
        account.points = account.points + earned
        account.last_earned_at = timezone.now()
        account.save(update_fields=["points", "last_earned_at"])
        return Response({"points": account.points})

    def patch(self, request):
        cost = int(request.data["cost"])
        account = LoyaltyAccount.objects.get(user=request.user)
        remaining = account.points - cost
        if remaining < 0:
            return Response({"detail": "not enough points"}, status=status.HTTP_409_CONFLICT)
        updated = LoyaltyAccount.objects.filter(pk=account.pk, version=account.version).update(
            points=remaining, version=F("version") + 1
        )
        if updated == 0:
            return Response({"detail": "points changed, retry"}, status=status.HTTP_409_CONFLICT)
        return Response({"points": remaining})


class WebhookReceiptView(APIView):
    received = 0
    authentication_classes = []
    permission_classes = []

    def post(self, request):
        WebhookReceiptView.received += 1
        event_type = request.data.get("type", "unknown")
        return Response({"ok": True, "type": event_type, "seq": WebhookReceiptView.received})


@api_view(["PUT"])
@permission_classes([IsAuthenticated])
def update_notification_prefs(request, channel):
    pref, created = NotificationPreference.objects.update_or_create(
        user=request.user,
        channel=channel,
        defaults={"enabled": bool(request.data.get("enabled", True)), "updated_at": timezone.now()},
    )
    code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return Response({"channel": pref.channel, "enabled": pref.enabled}, status=code)


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def set_wallet_nickname(request, pk):
    body = NicknameSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    wallet = Wallet.objects.get(pk=pk, owner=request.user)
    wallet.nickname = body.validated_data["nickname"]
    wallet.save(update_fields=["nickname"])
    return Response({"id": wallet.pk, "nickname": wallet.nickname})
