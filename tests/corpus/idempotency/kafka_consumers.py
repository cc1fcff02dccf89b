"""Long-running workers for the ledger service (run via `manage.py run_worker <name>`)."""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from decimal import Decimal

import pika
import redis
from confluent_kafka import Consumer, KafkaException, Producer
from django.conf import settings
from django.db import IntegrityError
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError

from ledger.models import Invoice, LedgerEntry, ProcessedMessage, RefundRequest, StockMovement

log = logging.getLogger("ledger.workers")

BROKERS = settings.KAFKA_BOOTSTRAP_SERVERS
redis_client = redis.Redis.from_url(settings.REDIS_URL)

producer = KafkaProducer(
    bootstrap_servers=BROKERS,
    key_serializer=lambda k: k.encode() if k else None,
    value_serializer=lambda v: json.dumps(v, default=str).encode(),
    acks="all",
)

CARRIER_NAMES = {"dhl": "DHL Express", "ups": "UPS", "gls": "GLS", "dpd": "DPD"}


class PublishError(RuntimeError):
    pass


def _json_consumer(topic: str, group_id: str | None, **extra) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=BROKERS,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        value_deserializer=lambda raw: json.loads(raw.decode("utf-8")),
        **extra,
    )


def publish_with_retry(topic: str, key: str, value: dict, attempts: int = 5) -> None:
    last_exc: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            producer.send(topic, key=key, value=value).get(timeout=10)
            return
        except KafkaTimeoutError as exc:
            last_exc = exc
            log.warning("publish to %s timed out (attempt %d/%d)", topic, attempt, attempts)
            time.sleep(min(2 ** attempt, 30))
    raise PublishError(f"could not publish to {topic} after {attempts} attempts") from last_exc


def emit_order_status(order_id: int, status: str) -> None:
    publish_with_retry("orders.status", str(order_id), {"order_id": order_id, "status": status, "ts": time.time()})


def consume_payments() -> None:
    consumer = _json_consumer("payments.settled", group_id="ledger-payments")
    for msg in consumer:
        event = msg.value
        LedgerEntry.objects.create(
            account_id=event["account_id"],
            amount=Decimal(event["amount"]),
            currency=event["currency"],
            reference=event["payment_id"],
            kind=LedgerEntry.Kind.CREDIT,
        )
        log.info("booked payment %s at offset %s", event["payment_id"], msg.offset)
        consumer.commit()


def consume_refund_requests() -> None:
    consumer = _json_consumer("refunds.requested", group_id="ledger-refunds")
    for msg in consumer:
        event = msg.value
        try:
            ProcessedMessage.objects.create(message_id=event["event_id"], topic=msg.topic)
        except IntegrityError:
            log.info("refund request %s already handled, skipping", event["event_id"])
            consumer.commit()
            continue
        RefundRequest.objects.create(
            order_id=event["order_id"],
            amount=Decimal(event["amount"]),
            reason=event.get("reason", ""),
        )
        consumer.commit()


def summarize_clickstream(max_messages: int = 50_000) -> Counter:
    consumer = _json_consumer("web.clickstream", group_id=None, consumer_timeout_ms=5000)
    views: Counter = Counter()
    for n, msg in enumerate(consumer, start=1):
        page = msg.value.get("path", "/")
        views[page] += 1
        if n >= max_messages:
            break
    consumer.close()
    log.info("read %d clickstream events, %d distinct pages", sum(views.values()), len(views))
    return views


class ShipmentEnricher:
    """Reads raw carrier scans, adds display fields and republishes them."""

    def __init__(self, group_id: str = "shipment-enricher"):
        self.consumer = Consumer({
            "bootstrap.servers": BROKERS,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        self.producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
        self._running = True

    @staticmethod
    def _enrich(scan: dict) -> dict:
        carrier = scan.get("carrier", "").lower()
        return {
            **scan,
            "carrier_name": CARRIER_NAMES.get(carrier, carrier.upper()),
            "delivered": scan.get("status") == "DELIVERED",
            "tracking_url": f"https://track.example.com/{carrier}/{scan['tracking_number']}",
        }

    def run(self) -> None:
        self.consumer.subscribe(["shipments.scans.raw"])
        while self._running:
            msg = self.consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            enriched = self._enrich(json.loads(msg.value()))
            self.producer.produce("shipments.scans.enriched", key=msg.key(), value=json.dumps(enriched))
            self.producer.poll(0)
            self.consumer.commit(message=msg, asynchronous=False)
        self.producer.flush(10)
        self.consumer.close()

    def stop(self) -> None:
        self._running = False


def on_order_paid(channel, method, properties, body: bytes) -> None:
    event = json.loads(body)
    invoice = Invoice.objects.create(
        order_id=event["order_id"],
        customer_id=event["customer_id"],
        amount=Decimal(event["amount"]),
        currency=event["currency"],
    )
    channel.basic_publish(
        exchange="billing",
        routing_key="invoice.created",
        body=json.dumps({"invoice_id": invoice.pk, "order_id": event["order_id"]}),
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
    channel.basic_ack(delivery_tag=method.delivery_tag)


def on_inventory_adjusted(channel, method, properties, body: bytes) -> None:
    if not redis_client.set(f"inventory-msg:{properties.message_id}", 1, nx=True, ex=86400):
        log.info("inventory message %s is a redelivery, acking", properties.message_id)
        channel.basic_ack(delivery_tag=method.delivery_tag)
        return
    adjustment = json.loads(body)
    StockMovement.objects.create(
        sku=adjustment["sku"],
        delta=int(adjustment["delta"]),
        reason=adjustment.get("reason", "adjustment"),
        warehouse_id=adjustment["warehouse_id"],
    )
    channel.basic_ack(delivery_tag=method.delivery_tag)


def run_rabbit_workers() -> None:
    connection = pika.BlockingConnection(pika.URLParameters(settings.RABBITMQ_URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume(queue="ledger.order-paid", on_message_callback=on_order_paid)
    channel.basic_consume(queue="ledger.inventory", on_message_callback=on_inventory_adjusted)
    channel.start_consuming()
