"""Order pipeline on AWS: SNS fan-out, SQS work queues, Kinesis clickstream, Step Functions, Lambda entry points."""
from __future__ import annotations

import json
import logging
import os
import uuid

import backoff
import boto3
import redis
import requests
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

log = logging.getLogger("pipeline")

_boto_cfg = Config(connect_timeout=3, read_timeout=10)
sns = boto3.client("sns", config=_boto_cfg)
sqs = boto3.client("sqs", config=_boto_cfg)
kinesis = boto3.client("kinesis", config=_boto_cfg)
sfn = boto3.client("stepfunctions", config=_boto_cfg)
ses = boto3.client("sesv2")
cloudwatch = boto3.client("cloudwatch")
dedup = redis.Redis.from_url(os.environ["DEDUP_REDIS_URL"])

ORDER_TOPIC_ARN = os.environ["ORDER_TOPIC_ARN"]
AUDIT_TOPIC_ARN = os.environ["AUDIT_TOPIC_ARN"]
FULFILMENT_QUEUE_URL = os.environ["FULFILMENT_QUEUE_URL"]
INVOICE_QUEUE_URL = os.environ["INVOICE_QUEUE_URL"]
REFUND_QUEUE_URL = os.environ["REFUND_QUEUE_URL"]
AUDIT_QUEUE_URL = os.environ["AUDIT_QUEUE_URL"]
EXPORT_QUEUE_URL = os.environ["EXPORT_QUEUE_URL"]
CLICKSTREAM = os.environ.get("CLICKSTREAM_STREAM", "storefront-clicks")
ORDER_WORKFLOW_ARN = os.environ["ORDER_WORKFLOW_ARN"]
SETTLEMENT_WORKFLOW_ARN = os.environ["SETTLEMENT_WORKFLOW_ARN"]
PARTNER_URL = os.environ["PARTNER_URL"]
RECEIPTS_FROM = os.environ.get("RECEIPTS_FROM", "receipts@shop.example")

_partner_retry = Retry(
    total=5,
    backoff_factor=1.0,
    status_forcelist=[429, 500, 502, 503, 504],
    allowed_methods=["GET", "POST"],
)
partner = requests.Session()
partner.mount("https://", HTTPAdapter(max_retries=_partner_retry))

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
idem_config = IdempotencyConfig(event_key_jmespath="order_id", expires_after_seconds=24 * 3600)


class StreamNotReady(Exception):
    pass


@backoff.on_exception(backoff.expo, (EndpointConnectionError, ClientError), max_tries=4)
def publish_order_event(order_id: str, event_type: str, payload: dict) -> str:
    message = json.dumps({"type": event_type, "order_id": order_id, "data": payload}, default=str)
    resp = sns.publish(
        TopicArn=ORDER_TOPIC_ARN,
        Message=message,
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": event_type}},
    )
    return resp["MessageId"]


@retry(stop=stop_after_attempt(4), wait=wait_exponential(max=8), retry=retry_if_exception_type(EndpointConnectionError), reraise=True)
def enqueue_fulfilment(order: dict) -> None:
    sqs.send_message(
        QueueUrl=FULFILMENT_QUEUE_URL,
        MessageBody=json.dumps(order, default=str),
        MessageGroupId=order["warehouse_id"],
        MessageDeduplicationId=order["order_id"],
    )


@retry(stop=stop_after_attempt(4), wait=wait_exponential(max=8), retry=retry_if_exception_type(EndpointConnectionError), reraise=True)
def enqueue_invoice_job(account_id: str, period: str) -> str:
    resp = sqs.send_message(
        QueueUrl=INVOICE_QUEUE_URL,
        MessageBody=json.dumps({"account_id": account_id, "period": period}),
        MessageGroupId=account_id,
        MessageDeduplicationId=f"{account_id}-{period}-{uuid.uuid4().hex}",
    )
    return resp["MessageId"]


@retry(stop=stop_after_attempt(3), retry=retry_if_exception_type(ClientError), reraise=True)
def record_click(user_id: str, event: dict) -> None:
    kinesis.put_record(StreamName=CLICKSTREAM, Data=json.dumps(event).encode(), PartitionKey=user_id)
    cloudwatch.put_metric_data(
        Namespace="Storefront",
        MetricData=[{"MetricName": "ClicksIngested", "Value": 1, "Unit": "Count"}],
    )


@retry(stop=stop_after_attempt(20), wait=wait_exponential(max=10), retry=retry_if_exception_type(StreamNotReady), reraise=True)
def wait_for_stream_active(stream_name: str) -> str:
    summary = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    if summary["StreamStatus"] != "ACTIVE":
        raise StreamNotReady(stream_name)
    return summary["StreamARN"]


def start_order_workflow(order_id: str, items: list[dict]) -> str:
    for attempt in Retrying(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5),
        retry=retry_if_exception_type(EndpointConnectionError),
        reraise=True,
    ):
        with attempt:
            execution = sfn.start_execution(
                stateMachineArn=ORDER_WORKFLOW_ARN,
                input=json.dumps({"order_id": order_id, "items": items}),
            )
    return execution["executionArn"]


def forward_to_partner(notice: dict) -> None:
    resp = partner.post(f"{PARTNER_URL}/refund-notices", json=notice, timeout=10)
    resp.raise_for_status()


def poll_refund_queue(stop_event) -> None:
    while not stop_event.is_set():
        batch = sqs.receive_message(
            QueueUrl=REFUND_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=20, VisibilityTimeout=60
        )
        for message in batch.get("Messages", []):
            notice = json.loads(message["Body"])
            forward_to_partner({"refund_id": notice["refund_id"], "amount": notice["amount"], "currency": notice["currency"]})
            sqs.delete_message(QueueUrl=REFUND_QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])


def drain_audit_queue(stop_event) -> None:
    while not stop_event.is_set():
        batch = sqs.receive_message(QueueUrl=AUDIT_QUEUE_URL, MaxNumberOfMessages=10, WaitTimeSeconds=20)
        for message in batch.get("Messages", []):
            if not dedup.set(f"audit:{message['MessageId']}", 1, nx=True, ex=3 * 86400):
                sqs.delete_message(QueueUrl=AUDIT_QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
                continue
            record = json.loads(message["Body"])
            sns.publish(TopicArn=AUDIT_TOPIC_ARN, Message=json.dumps(record), Subject=record["action"][:100])
            sqs.delete_message(QueueUrl=AUDIT_QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])


def send_receipt_handler(event, context):
    for record in event["Records"]:
        receipt = json.loads(record["body"])
        ses.send_email(
            FromEmailAddress=RECEIPTS_FROM,
            Destination={"ToAddresses": [receipt["email"]]},
            Content={
                "Simple": {
                    "Subject": {"Data": f"Receipt for order {receipt['order_id']}"},
                    "Body": {"Text": {"Data": f"Total charged: {receipt['total']} {receipt['currency']}"}},
                }
            },
        )
    return {"batchItemFailures": []}


@idempotent_function(data_keyword_argument="order", config=idem_config, persistence_store=persistence)
def start_settlement(order: dict) -> dict:
    execution = sfn.start_execution(stateMachineArn=SETTLEMENT_WORKFLOW_ARN, input=json.dumps(order))
    return {"order_id": order["order_id"], "execution_arn": execution["executionArn"]}


def settlement_handler(event, context):
    idem_config.register_lambda_context(context)
    started = 0
    for record in event["Records"]:
        start_settlement(order=json.loads(record["body"]))
        started += 1
    log.info("started %d settlement workflows", started)
    return {"batchItemFailures": []}


def create_export_handler(event, context):
    body = json.loads(event.get("body") or "{}")
    if "report" not in body:
        return {"statusCode": 400, "body": json.dumps({"error": "report is required"})}
    job_id = str(uuid.uuid4())
    sqs.send_message(
        QueueUrl=EXPORT_QUEUE_URL,
        MessageBody=json.dumps({
            "job_id": job_id,
            "report": body["report"],
            "requested_by": event["requestContext"]["authorizer"]["claims"]["sub"],
        }),
    )
    return {"statusCode": 202, "body": json.dumps({"job_id": job_id})}
