"""AWS messaging for the order platform: SQS jobs, SNS fan-out, SES mail and the partner relay."""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import backoff
import boto3
import requests
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from requests.adapters import HTTPAdapter, Retry
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

EXPORT_QUEUE_URL = os.environ["EXPORT_QUEUE_URL"]
ORDERS_FIFO_QUEUE_URL = os.environ["ORDERS_FIFO_QUEUE_URL"]
SHIPPING_UPDATES_QUEUE_URL = os.environ["SHIPPING_UPDATES_QUEUE_URL"]
PARTNER_EVENTS_QUEUE_URL = os.environ["PARTNER_EVENTS_QUEUE_URL"]
PRICE_TOPIC_ARN = os.environ["PRICE_TOPIC_ARN"]  # FIFO topic
ORDER_TOPIC_ARN = os.environ["ORDER_TOPIC_ARN"]
PARTNER_ENDPOINT = os.environ.get("PARTNER_ENDPOINT", "https://partner.example.com/hooks/orders")
SENDER = "Orders <orders@shop.example.com>"

_boto_config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)
sqs = boto3.client("sqs", config=_boto_config)
sns = boto3.client("sns", config=_boto_config)
ses = boto3.client("ses", config=_boto_config)
dynamodb = boto3.resource("dynamodb", config=_boto_config)
customers_table = dynamodb.Table(os.environ.get("CUSTOMERS_TABLE", "customers"))

persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ.get("IDEMPOTENCY_TABLE", "idempotency"))
idempotency_config = IdempotencyConfig(event_key_jmespath="order_id", expires_after_seconds=3600)

AWS_TRANSIENT = (ClientError, EndpointConnectionError)


def _order_summary(order) -> dict:
    return {
        "order_id": str(order.id),
        "customer_id": str(order.customer_id),
        "total": str(order.total),
        "currency": order.currency,
        "placed_at": order.placed_at.isoformat(),
    }


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.5, max=8),
    retry=retry_if_exception_type(AWS_TRANSIENT),
    reraise=True,
)
def enqueue_export(account_id: str, export_format: str = "csv") -> str:
    resp = sqs.send_message(
        QueueUrl=EXPORT_QUEUE_URL,
        MessageBody=json.dumps({"account_id": account_id, "format": export_format}),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "account_export"}},
    )
    return resp["MessageId"]


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.5, max=8),
    retry=retry_if_exception_type(AWS_TRANSIENT),
    reraise=True,
)
def enqueue_order(order) -> str:
    resp = sqs.send_message(
        QueueUrl=ORDERS_FIFO_QUEUE_URL,
        MessageBody=json.dumps(_order_summary(order)),
        MessageGroupId=str(order.customer_id),
        MessageDeduplicationId=str(order.id),
    )
    return resp["MessageId"]


@retry(stop=stop_after_attempt(3), wait=wait_exponential(max=5), retry=retry_if_exception_type(AWS_TRANSIENT), reraise=True)
def publish_price_change(sku: str, old_price: str, new_price: str) -> str:
    dedup_id = f"{sku}-{datetime.now(timezone.utc).timestamp()}"
    resp = sns.publish(
        TopicArn=PRICE_TOPIC_ARN,
        Message=json.dumps({"sku": sku, "old": old_price, "new": new_price}),
        MessageGroupId=sku,
        MessageDeduplicationId=dedup_id,
    )
    return resp["MessageId"]


@backoff.on_exception(backoff.expo, AWS_TRANSIENT, max_tries=3)
def notify_customer(customer_id: str, order) -> None:
    ses.send_email(
        Source=SENDER,
        Destination={"ToAddresses": [order.email]},
        Message={
            "Subject": {"Data": f"Your order {order.number} has shipped"},
            "Body": {"Text": {"Data": f"Tracking number: {order.tracking_number}"}},
        },
    )
    customers_table.update_item(
        Key={"customer_id": customer_id},
        UpdateExpression="SET last_notified_at = :now",
        ExpressionAttributeValues={":now": datetime.now(timezone.utc).isoformat()},
    )


def poll_shipping_updates(stop_after: int | None = None) -> None:
    handled = 0
    while stop_after is None or handled < stop_after:
        resp = sqs.receive_message(
            QueueUrl=SHIPPING_UPDATES_QUEUE_URL,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=20,
            VisibilityTimeout=60,
        )
        for msg in resp.get("Messages", []):
            update = json.loads(msg["Body"])
            sns.publish(
                PhoneNumber=update["phone"],
                Message=f"Order {update['order_number']}: {update['status_text']}",
            )
            sqs.delete_message(QueueUrl=SHIPPING_UPDATES_QUEUE_URL, ReceiptHandle=msg["ReceiptHandle"])
            handled += 1


def build_partner_session() -> requests.Session:
    # every POST below carries an Idempotency-Key, so the partner dedups retried deliveries
    retries = Retry(
        total=4,
        backoff_factor=1,
        status_forcelist=[429, 502, 503, 504],
        allowed_methods=["GET", "POST"],
    )
    session = requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=retries))
    session.headers["Authorization"] = f"Bearer {os.environ.get('PARTNER_TOKEN', '')}"
    return session


def relay_partner_events(session: requests.Session, max_batches: int = 100) -> int:
    relayed = 0
    for _ in range(max_batches):
        resp = sqs.receive_message(QueueUrl=PARTNER_EVENTS_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=10)
        messages = resp.get("Messages", [])
        if not messages:
            break
        for msg in messages:
            delivery = session.post(
                PARTNER_ENDPOINT,
                data=msg["Body"],
                headers={"Content-Type": "application/json", "Idempotency-Key": msg["MessageId"]},
                timeout=10,
            )
            delivery.raise_for_status()
            sqs.delete_message(QueueUrl=PARTNER_EVENTS_QUEUE_URL, ReceiptHandle=msg["ReceiptHandle"])
            relayed += 1
    return relayed


@idempotent_function(data_keyword_argument="order", config=idempotency_config, persistence_store=persistence_layer)
def fan_out_order(order: dict) -> dict:
    sns.publish(
        TopicArn=ORDER_TOPIC_ARN,
        Message=json.dumps(order),
        MessageAttributes={"event": {"DataType": "String", "StringValue": "order_placed"}},
    )
    return {"order_id": order["order_id"], "published": True}


def lambda_handler(event: dict, context) -> dict:
    idempotency_config.register_lambda_context(context)
    results = []
    for record in event["Records"]:
        order = json.loads(record["body"])
        results.append(fan_out_order(order=order))
    log.info("fanned out %d orders", len(results))
    return {"batchItemFailures": []}
