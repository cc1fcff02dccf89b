"""AWS glue for the fulfilment pipeline: SQS workers, Lambda handlers and boto3 helpers."""
from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime, timezone

import backoff
import boto3
import psycopg2
import redis
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from botocore.exceptions import ClientError, EndpointConnectionError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

sqs = boto3.client("sqs")
sns = boto3.client("sns")
ses = boto3.client("ses")
sfn = boto3.client("stepfunctions")
kinesis = boto3.client("kinesis")

EMAIL_QUEUE_URL = os.environ.get("EMAIL_QUEUE_URL", "")
AUDIT_QUEUE_URL = os.environ.get("AUDIT_QUEUE_URL", "")
ORDERS_FIFO_URL = os.environ.get("ORDERS_FIFO_URL", "")
INVOICE_FIFO_URL = os.environ.get("INVOICE_FIFO_URL", "")
ORDER_TOPIC_ARN = os.environ.get("ORDER_TOPIC_ARN", "")
PAYMENT_TOPIC_ARN = os.environ.get("PAYMENT_TOPIC_ARN", "")
PRICE_TOPIC_ARN = os.environ.get("PRICE_TOPIC_ARN", "")
PRICE_STREAM = os.environ.get("PRICE_STREAM", "price-changes")
FULFILMENT_SFN_ARN = os.environ.get("FULFILMENT_SFN_ARN", "")
SENDER = os.environ.get("SES_SENDER", "no-reply@shop.example.com")

redis_client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ.get("IDEMPOTENCY_TABLE", "idempotency"))
idempotency_config = IdempotencyConfig(event_key_jmespath="Records[*].messageId", expires_after_seconds=3600)


def _ses_message(subject: str, html: str) -> dict:
    return {
        "Subject": {"Data": subject, "Charset": "UTF-8"},
        "Body": {"Html": {"Data": html, "Charset": "UTF-8"}},
    }


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def poll_email_queue() -> None:
    while True:
        resp = sqs.receive_message(
            QueueUrl=EMAIL_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=20, VisibilityTimeout=60
        )
        for message in resp.get("Messages", []):
            job = json.loads(message["Body"])
            ses.send_email(
                Source=SENDER,
                Destination={"ToAddresses": [job["to"]]},
                Message=_ses_message(job["subject"], job["html"]),
            )
            sqs.delete_message(QueueUrl=EMAIL_QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])


def drain_audit_queue(dsn: str) -> int:
    stored = 0
    conn = psycopg2.connect(dsn)
    while True:
        resp = sqs.receive_message(QueueUrl=AUDIT_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=5)
        messages = resp.get("Messages", [])
        if not messages:
            break
        with conn, conn.cursor() as cur:
            for m in messages:
                entry = json.loads(m["Body"])
                cur.execute(
                    "INSERT INTO audit_log (message_id, actor, action, payload, received_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
                    (m["MessageId"], entry["actor"], entry["action"], json.dumps(entry), _now_iso()),
                )
        sqs.delete_message_batch(
            QueueUrl=AUDIT_QUEUE_URL,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages],
        )
        stored += len(messages)
    conn.close()
    return stored


def order_events_handler(event, context):
    for record in event["Records"]:
        order = json.loads(record["body"])
        sns.publish(
            TopicArn=ORDER_TOPIC_ARN,
            Message=json.dumps({"order_id": order["id"], "status": order["status"], "total": order["total"]}),
            MessageAttributes={"event_type": {"DataType": "String", "StringValue": "order." + order["status"]}},
        )
    logger.info("fanned out %d order events", len(event["Records"]))
    return {"statusCode": 200}


@idempotent(persistence_store=persistence_layer, config=idempotency_config)
def payment_events_handler(event, context):
    for record in event["Records"]:
        payment = json.loads(record["body"])
        sns.publish(
            TopicArn=PAYMENT_TOPIC_ARN,
            Message=json.dumps(payment),
            MessageAttributes={"currency": {"DataType": "String", "StringValue": payment["currency"]}},
        )
    return {"processed": len(event["Records"])}


def signup_events_handler(event, context):
    sent = 0
    for record in event["Records"]:
        if not redis_client.set(f"signup-mail:{record['messageId']}", "1", nx=True, ex=48 * 3600):
            logger.info("signup message %s already handled", record["messageId"])
            continue
        signup = json.loads(record["body"])
        ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": [signup["email"]]},
            Message=_ses_message("Confirm your e-mail address", signup["confirm_html"]),
        )
        sent += 1
    return {"sent": sent}


@backoff.on_exception(backoff.expo, (ClientError, EndpointConnectionError), max_tries=5, jitter=backoff.full_jitter)
def start_fulfilment(order: dict) -> str:
    resp = sfn.start_execution(stateMachineArn=FULFILMENT_SFN_ARN, input=json.dumps(order, default=str))
    logger.info("started fulfilment for order %s", order["id"])
    return resp["executionArn"]


@backoff.on_exception(backoff.expo, ClientError, max_tries=6)
def enqueue_order_for_fulfilment(order_id: int, warehouse: str) -> str:
    resp = sqs.send_message(
        QueueUrl=ORDERS_FIFO_URL,
        MessageBody=json.dumps({"order_id": order_id, "warehouse": warehouse}),
        MessageGroupId=warehouse,
        MessageDeduplicationId=f"order-{order_id}",
    )
    return resp["MessageId"]


@backoff.on_exception(backoff.expo, ClientError, max_time=60)
def enqueue_invoice_job(invoice_id: int, account_id: int) -> str:
    resp = sqs.send_message(
        QueueUrl=INVOICE_FIFO_URL,
        MessageBody=json.dumps({"invoice_id": invoice_id, "requested_at": _now_iso()}),
        MessageGroupId=str(account_id),
        MessageDeduplicationId=str(uuid.uuid4()),
    )
    return resp["MessageId"]


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.5, max=8),
    retry=retry_if_exception_type(ClientError),
    reraise=True,
)
def broadcast_price_change(sku: str, old_price: str, new_price: str) -> None:
    payload = {"sku": sku, "old": old_price, "new": new_price, "changed_at": _now_iso()}
    sns.publish(TopicArn=PRICE_TOPIC_ARN, Message=json.dumps(payload), Subject="price-change")
    kinesis.put_record(StreamName=PRICE_STREAM, Data=json.dumps(payload).encode(), PartitionKey=sku)
