"""Order-event consumers: Kafka (confluent + aiokafka), SQS and RabbitMQ."""
from __future__ import annotations

import asyncio as aio
import json
import logging
import time
from contextlib import suppress

import boto3
import pika
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, KafkaException, Producer

from .audit import audit_log
from .handlers import apply_inventory, handle_order_event, handle_shipment
from .settings import KAFKA_BROKERS, ORDERS_DLQ, ORDERS_TOPIC, SHIPMENTS_QUEUE_URL

log = logging.getLogger("consumers")

producer = Producer({"bootstrap.servers": KAFKA_BROKERS, "enable.idempotence": True})
sqs = boto3.client("sqs")


def header(msg, name: str, default: str | None = None) -> str | None:
    try:
        return dict(msg.headers() or [])[name].decode()
    except KeyError:
        return default


def publish_order_created(order) -> None:
    try:
        producer.produce(ORDERS_TOPIC, key=str(order.id), value=json.dumps(order.to_event()))
        producer.poll(0)
    except Exception:
        ...


class OrderEventConsumer:
    def __init__(self, group_id: str):
        self.consumer = Consumer({
            "bootstrap.servers": KAFKA_BROKERS,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        self._running = True

    def _decode(self, msg) -> dict | None:
        try:
            return json.loads(msg.value())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def run(self) -> None:
        self.consumer.subscribe([ORDERS_TOPIC])
        while self._running:
            msg = self.consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            event = self._decode(msg)
            try:
                if event is None:
                    raise ValueError("undecodable payload")
                handle_order_event(event)
            except Exception as exc:
                log.exception("order event at offset %s failed; sending to DLQ", msg.offset())
                producer.produce(ORDERS_DLQ, key=msg.key(), value=msg.value(),
                                 headers={"error": repr(exc)[:500]})
            self.consumer.commit(message=msg, asynchronous=False)

    def shutdown(self) -> None:
        self._running = False
        try:
            self.consumer.close()
        except Exception:
            pass


def poll_shipments(max_batches: int = 100) -> None:
    for _ in range(max_batches):
        resp = sqs.receive_message(QueueUrl=SHIPMENTS_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=20)
        for m in resp.get("Messages", []):
            try:
                handle_shipment(json.loads(m["Body"]))
            except Exception:
                log.exception("shipment message %s failed; leaving it for redelivery", m["MessageId"])
                continue
            sqs.delete_message(QueueUrl=SHIPMENTS_QUEUE_URL, ReceiptHandle=m["ReceiptHandle"])


def on_rabbit_message(channel, method, properties, body: bytes) -> None:
    try:
        handle_order_event(json.loads(body))
        channel.basic_ack(delivery_tag=method.delivery_tag)
    except Exception:
        log.exception("rabbit message %s failed", properties.message_id)
        channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)


async def consume_inventory() -> None:
    consumer = AIOKafkaConsumer("inventory", bootstrap_servers=KAFKA_BROKERS, group_id="inventory-sync")
    await consumer.start()
    try:
        async for msg in consumer:
            try:
                await apply_inventory(json.loads(msg.value))
            except Exception as e:
                log.warning(f"inventory update at offset {msg.offset} failed: {e}")
    finally:
        await consumer.stop()


def fire_and_forget_audit(event: dict) -> None:
    aio.ensure_future(audit_log.write(event))


class InventoryWorker:
    def __init__(self):
        self.queue: aio.Queue[dict] = aio.Queue(maxsize=1000)
        self._task: aio.Task | None = None

    def start(self) -> None:
        self._task = aio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        try:
            while True:
                update = await self.queue.get()
                await apply_inventory(update)
                self.queue.task_done()
        except aio.CancelledError:
            log.info("inventory worker cancelled with %d updates pending", self.queue.qsize())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(aio.CancelledError):
                await self._task


def connect_rabbit(params: pika.ConnectionParameters) -> pika.BlockingConnection:
    while True:
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError:
            log.exception("rabbitmq unavailable; retrying in 5s")
            time.sleep(5)


def main() -> None:
    params = pika.URLParameters("amqp://guest:guest@rabbit:5672/%2F")
    channel = connect_rabbit(params).channel()
    channel.basic_qos(prefetch_count=20)
    channel.basic_consume(queue="orders", on_message_callback=on_rabbit_message)
    channel.start_consuming()
