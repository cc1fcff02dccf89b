"""gRPC front end for the order service (several replicas behind the internal LB)."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures

import grpc
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from orders.db import engine
from orders.models import Customer, IdempotencyKey, Order, Product
from orders.proto import inventory_pb2, inventory_pb2_grpc, orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

INVENTORY_ADDR = os.environ.get("INVENTORY_ADDR", "inventory:50051")
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)

_price_cache: dict[str, int] = {}
_price_cache_lock = threading.Lock()
_inventory_stub = None


def inventory_stub():
    global _inventory_stub
    if _inventory_stub is None:
        channel = grpc.insecure_channel(INVENTORY_ADDR)
        _inventory_stub = inventory_pb2_grpc.InventoryStub(channel)
    return _inventory_stub


class OrderRepository:
    def __init__(self, session_factory=SessionLocal):
        self._session_factory = session_factory

    def price_for(self, sku: str) -> int:
        with self._session_factory() as session:
            return session.execute(
                select(Product.price_cents).where(Product.sku == sku)
            ).scalar_one()

    def reserve_stock(self, sku: str, qty: int) -> bool:
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Product)
                .where(Product.sku == sku, Product.stock >= qty)
                .values(stock=Product.stock - qty)
            )
            return result.rowcount == 1

    def create_order(self, customer_id: int, sku: str, qty: int, unit_price: int) -> int:
        with self._session_factory.begin() as session:
            order = Order(customer_id=customer_id, sku=sku, qty=qty,
                          unit_price_cents=unit_price, status="PENDING")
            session.add(order)
            session.flush()
            return order.id

    def add_loyalty_points(self, customer_id: int, points: int) -> int:
        with self._session_factory() as session:
            customer = session.get(Customer, customer_id)
            customer.points = customer.points + points
            session.commit()
            return customer.points

    def cancel(self, order_id: int) -> bool:
        with self._session_factory.begin() as session:
            order = session.execute(
                select(Order).where(Order.id == order_id).with_for_update()
            ).scalar_one()
            if order.status != "PENDING":
                return False
            order.status = "CANCELLED"
            order.cancelled_at = time.time()
            return True

    def claim_idempotency_key(self, key: str, order_id: int) -> int:
        with self._session_factory() as session:
            session.add(IdempotencyKey(key=key, order_id=order_id))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return session.get(IdempotencyKey, key).order_id
            return order_id

    def ensure_customer(self, email: str, name: str) -> int:
        with self._session_factory() as session:
            existing = session.execute(
                select(Customer).where(Customer.email == email)
            ).scalar_one_or_none()
            if existing is not None:
                return existing.id
            customer = Customer(email=email, name=name, points=0)
            session.add(customer)
            session.commit()
            return customer.id

    def iter_orders(self, since: float):
        with self._session_factory() as session:
            yield from session.scalars(
                select(Order).where(Order.created_at >= since).order_by(Order.id)
            )


def cached_price(repo: OrderRepository, sku: str) -> int:
    price = _price_cache.get(sku)
    if price is not None:
        return price
    with _price_cache_lock:
        price = _price_cache.get(sku)
        if price is None:
            price = repo.price_for(sku)
            _price_cache[sku] = price
    return price


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, repo: OrderRepository):
        self._repo = repo
        self._lock = threading.Lock()
        self._placed = 0
        self._revenue_cents = 0
        self._last_failure: str | None = None
        self._bytes_exported = 0
        self._quotes: dict[str, orders_pb2.Quote] = {}

    def PlaceOrder(self, request, context):
        unit_price = cached_price(self._repo, request.sku)
        if not self._repo.reserve_stock(request.sku, request.quantity):
            with self._lock:
                self._last_failure = f"out of stock: {request.sku}"
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "insufficient stock")
        order_id = self._repo.create_order(
            request.customer_id, request.sku, request.quantity, unit_price
        )
        winner = self._repo.claim_idempotency_key(request.idempotency_key, order_id)
        if winner != order_id:
            self._repo.cancel(order_id)
            return orders_pb2.PlaceOrderReply(order_id=winner, duplicate=True)
        with self._lock:
            self._placed += 1
            self._revenue_cents += unit_price * request.quantity
        return orders_pb2.PlaceOrderReply(order_id=order_id)

    def Register(self, request, context):
        customer_id = self._repo.ensure_customer(request.email, request.name)
        return orders_pb2.RegisterReply(customer_id=customer_id)

    def RedeemPoints(self, request, context):
        if request.points <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "points must be positive")
        balance = self._repo.add_loyalty_points(request.customer_id, -request.points)
        return orders_pb2.PointsReply(balance=balance)

    def CheckAvailability(self, request, context):
        reply = inventory_stub().Available(
            inventory_pb2.AvailableRequest(sku=request.sku), timeout=2.0
        )
        return orders_pb2.AvailabilityReply(sku=request.sku, available=reply.count)

    def GetQuote(self, request, context):
        quote = self._quotes.get(request.sku)
        if quote is None:
            fresh = orders_pb2.Quote(
                sku=request.sku, unit_price_cents=cached_price(self._repo, request.sku)
            )
            quote = self._quotes.setdefault(request.sku, fresh)
        return quote

    def InvalidateQuotes(self, request, context):
        with threading.Lock():
            for sku in request.skus:
                self._quotes.pop(sku, None)
        return orders_pb2.Empty()

    def ReportFailure(self, request, context):
        log.warning("client reported failure for order %s: %s", request.order_id, request.reason)
        self._last_failure = request.reason
        return orders_pb2.Empty()

    def ExportOrders(self, request, context):
        for order in self._repo.iter_orders(request.since):
            record = orders_pb2.OrderRecord(
                id=order.id, sku=order.sku, quantity=order.qty, status=order.status
            )
            self._bytes_exported += record.ByteSize()
            yield record

    def GetStats(self, request, context):
        with self._lock:
            placed, revenue, failure = self._placed, self._revenue_cents, self._last_failure
        return orders_pb2.StatsReply(
            placed=placed,
            revenue_cents=revenue,
            last_failure=failure or "",
            bytes_exported=self._bytes_exported,
        )


def serve(port: int = 50051) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=int(os.environ.get("ORDER_WORKERS", "16"))),
    )
    orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(OrderRepository()), server)
    server.add_insecure_port(f"[::]:{port}")
    server.start()
    log.info("order service listening on :%d", port)
    server.wait_for_termination()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    serve()
