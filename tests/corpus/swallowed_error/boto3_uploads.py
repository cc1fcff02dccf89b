"""S3 helpers for user uploads, thumbnails and the nightly archive job."""
from __future__ import annotations

import json
import logging
import mimetypes
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("uploads.s3")

BUCKET = "acme-user-uploads"
ARCHIVE_BUCKET = "acme-user-uploads-archive"
PART_SIZE = 8 * 1024 * 1024

s3 = boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "adaptive"}))
_upload_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3-upload")


def object_exists(key: str, bucket: str = BUCKET) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload_file(path: str | Path, key: str) -> bool:
    content_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    try:
        s3.upload_file(
            str(path), BUCKET, key,
            ExtraArgs={"ContentType": content_type},
            Config=TransferConfig(multipart_chunksize=PART_SIZE),
        )
    except (BotoCoreError, ClientError) as e:
        logger.error("upload of %s to s3://%s/%s failed: %s", path, BUCKET, key, e)
        return False
    return True


def get_object_json(key: str) -> dict:
    try:
        obj = s3.get_object(Bucket=BUCKET, Key=key)
        return json.loads(obj["Body"].read())
    except Exception:
        logger.exception("could not read s3://%s/%s", BUCKET, key)
        return {}


def read_local_manifest(path: str) -> dict:
    with suppress(FileNotFoundError):
        return json.loads(Path(path).read_text())
    return {}


def upload_many(paths: list[Path], prefix: str) -> list[bool]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(upload_file, p, f"{prefix}/{p.name}") for p in paths]
        return [f.result() for f in futures]


def upload_in_background(path: Path, key: str) -> Future[bool]:
    return _upload_pool.submit(upload_file, path, key)


def upload_thumbnails_async(paths: list[Path], prefix: str) -> None:
    for p in paths:
        _upload_pool.submit(upload_file, p, f"{prefix}/thumbs/{p.name}")


def copy_to_archive(keys: list[str]) -> int:
    archived = 0
    for key in keys:
        try:
            s3.copy_object(Bucket=ARCHIVE_BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key})
            s3.delete_object(Bucket=BUCKET, Key=key)
            archived += 1
        except Exception as e:
            print(f"archive of {key} failed: {e}")
    return archived


class MultipartUpload:
    """Context manager that aborts the multipart upload if the body raises."""

    def __init__(self, key: str, bucket: str = BUCKET):
        self.key = key
        self.bucket = bucket
        self.parts: list[dict] = []
        self.upload_id: str | None = None

    def __repr__(self) -> str:
        try:
            return f"<MultipartUpload s3://{self.bucket}/{self.key} id={self.upload_id[:8]} parts={len(self.parts)}>"
        except Exception:
            return f"<MultipartUpload s3://{self.bucket}/{self.key} (not started)>"

    def __enter__(self) -> "MultipartUpload":
        self.upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        return self

    def write_part(self, data: bytes) -> None:
        n = len(self.parts) + 1
        resp = s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=data)
        self.parts.append({"ETag": resp["ETag"], "PartNumber": n})

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
            return False
        try:
            s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:
            pass
        return False


def delete_prefix(prefix: str) -> list[tuple[str, str]]:
    """Delete everything under prefix; returns (key, error code) for objects S3 refused to delete."""
    failed: list[tuple[str, str]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not keys:
            continue
        try:
            resp = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
        except ClientError as e:
            failed.extend((k["Key"], e.response["Error"]["Code"]) for k in keys)
            continue
        failed.extend((err["Key"], err["Code"]) for err in resp.get("Errors", []))
    return failed
