"""Order stream workers: Kafka consumers and the outbox relay, plus rq and dramatiq background jobs."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import backoff
import dramatiq
import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer
from redis import Redis
from requests.adapters import HTTPAdapter
from rq import Queue, Retry
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from tenacity import Retrying, retry, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry as HTTPRetry

from workers.db import AsyncSessionLocal, SessionLocal
from workers.models import Customer, LedgerPosting, Outbox, ProcessedMessage
from workers.risk import score_order
from workers.settings import settings

log = logging.getLogger("workers")


def build_billing_session() -> requests.Session:
    session = requests.Session()
    session.headers["X-Api-Key"] = settings.billing_api_key
    session.mount(
        "https://",
        HTTPAdapter(max_retries=HTTPRetry(total=5, backoff_factor=0.3, status_forcelist=[500, 502, 503], method_whitelist=False)),
    )
    return session


def build_crm_session() -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.crm_token}"
    # only replays requests whose connection never got established
    policy = HTTPRetry(total=4, connect=4, read=0, status=0, backoff_factor=0.5, allowed_methods=None)
    session.mount("https://", HTTPAdapter(max_retries=policy))
    return session


billing = build_billing_session()
crm = build_crm_session()
redis_conn = Redis.from_url(settings.redis_url)
crm_queue = Queue("crm", connection=redis_conn)
producer = Producer({"bootstrap.servers": settings.kafka_brokers, "enable.idempotence": True, "linger.ms": 20})


def _charge_via_billing(order: dict) -> None:
    resp = billing.post(
        f"{settings.billing_url}/charges",
        json={"order_id": order["id"], "amount": order["total"], "currency": order["currency"]},
        timeout=10,
    )
    resp.raise_for_status()


def run_order_consumer() -> None:
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_brokers,
        "group.id": "billing-orders",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe(["orders.placed"])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            order = json.loads(msg.value())
            _charge_via_billing(order)
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


async def run_payment_consumer() -> None:
    consumer = AIOKafkaConsumer(
        "payments.settled", bootstrap_servers=settings.kafka_brokers, group_id="ledger-writer", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async for msg in consumer:
            payment = json.loads(msg.value)
            async with AsyncSessionLocal() as session:
                try:
                    session.add(ProcessedMessage(id=msg.key.decode(), received_at=datetime.now(timezone.utc)))
                    await session.flush()
                except IntegrityError:
                    log.info("payment %s already posted, skipping", msg.key)
                    await consumer.commit()
                    continue
                session.add(LedgerPosting(payment_id=payment["id"], amount_minor=payment["amount"], currency=payment["currency"]))
                await session.commit()
            await consumer.commit()
    finally:
        await consumer.stop()


async def enrich_and_forward() -> None:
    consumer = AIOKafkaConsumer(
        "orders.placed", bootstrap_servers=settings.kafka_brokers, group_id="order-enricher", enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_brokers, enable_idempotence=True, acks="all")
    await consumer.start()
    await producer.start()
    try:
        async for msg in consumer:
            order = json.loads(msg.value)
            order["risk_score"] = score_order(order)
            await producer.send("orders.enriched", key=msg.key, value=json.dumps(order).encode())
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


@retry(retry=retry_if_exception_type((KafkaException, OperationalError)), stop=stop_after_attempt(5), wait=wait_exponential(max=10), reraise=True)
def relay_outbox_row(row_id: int, topic: str, key: str, payload: bytes) -> None:
    producer.produce(topic, key=key, value=payload)
    producer.flush(10)
    with SessionLocal() as session:
        session.execute(update(Outbox).where(Outbox.id == row_id).values(published_at=datetime.now(timezone.utc)))
        session.commit()


@backoff.on_exception(backoff.expo, (requests.ConnectionError, requests.Timeout), max_tries=5, max_time=120)
def push_order_to_marketplace(order: dict) -> str:
    resp = billing.post(
        f"{settings.marketplace_url}/orders",
        json={"external_id": order["id"], "lines": order["lines"], "ship_to": order["shipping_address"]},
        timeout=15,
    )
    resp.raise_for_status()
    return resp.json()["marketplace_order_id"]


@backoff.on_exception(backoff.expo, requests.RequestException, max_tries=4)
def sync_customer_to_crm(customer_id: int) -> None:
    with SessionLocal() as session:
        customer = session.get(Customer, customer_id)
        body = {"email": customer.email, "name": customer.full_name, "tier": customer.tier}
        external_id = customer.crm_id
    resp = crm.put(f"{settings.crm_url}/contacts/{external_id}", json=body, timeout=10)
    resp.raise_for_status()


def schedule_crm_sync(customer_id: int) -> str:
    job = crm_queue.enqueue(
        sync_customer_to_crm,
        customer_id,
        job_id=f"crm-sync-{customer_id}",
        retry=Retry(max=3, interval=[10, 60, 300]),
    )
    return job.id


@dramatiq.actor(queue_name="loyalty", max_retries=5, min_backoff=2_000)
def award_loyalty_points(user_id: int, order_id: str, points: int) -> None:
    resp = billing.post(
        f"{settings.loyalty_url}/accounts/{user_id}/credits",
        json={"points": points, "source": "order", "order_id": order_id},
        headers={"Idempotency-Key": f"loyalty-order-{order_id}"},
        timeout=10,
    )
    resp.raise_for_status()


@dramatiq.actor(queue_name="giftcards", max_retries=0)
def issue_gift_card(order_id: str, recipient_email: str, amount_minor: int) -> None:
    for attempt in Retrying(
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=1, max=20),
        retry=retry_if_exception_type(requests.ConnectionError),
        reraise=True,
    ):
        with attempt:
            resp = billing.post(
                f"{settings.giftcard_url}/cards",
                json={"order_id": order_id, "email": recipient_email, "amount": amount_minor},
                headers={"Idempotency-Key": f"gift-{order_id}-{datetime.now(timezone.utc):%Y%m%d%H%M%S%f}"},
                timeout=10,
            )
            resp.raise_for_status()
    log.info("gift card %s issued for order %s", resp.json()["card_id"], order_id)
