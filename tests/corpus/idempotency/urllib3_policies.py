"""urllib3 pools for the telemetry pipeline: event ingest, metrics shipping and checkpoints."""
from __future__ import annotations

import gzip
import json
import logging
import os
import time

import urllib3
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

INGEST_URL = os.environ.get("INGEST_URL", "https://ingest.example.com/v1/events")
METRICS_URL = os.environ.get("METRICS_URL", "https://metrics.example.com/api/v2/series")
MANIFEST_URL = os.environ.get("MANIFEST_URL", "https://datasets.example.com/manifests")
CHECKPOINT_URL = os.environ.get("CHECKPOINT_URL", "https://state.example.com/checkpoints")
API_KEY = os.environ.get("TELEMETRY_API_KEY", "")

http = urllib3.PoolManager(
    retries=Retry(total=3, backoff_factor=0.3, status_forcelist=[502, 503]),
    timeout=urllib3.Timeout(connect=2.0, read=10.0),
)


class UpstreamError(Exception):
    def __init__(self, status: int):
        super().__init__(f"upstream returned HTTP {status}")
        self.status = status


class ManifestUnavailable(Exception):
    pass


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "DD-API-KEY": API_KEY}


def make_ingest_pool(maxsize: int = 8) -> urllib3.PoolManager:
    retries = Retry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
    )
    return urllib3.PoolManager(num_pools=4, maxsize=maxsize, retries=retries)


def make_legacy_pool() -> urllib3.PoolManager:
    # pinned to urllib3 1.25 on the old collectors
    retries = Retry(total=4, backoff_factor=1, status_forcelist=[500, 502, 503], method_whitelist=False)
    return urllib3.PoolManager(retries=retries, timeout=urllib3.Timeout(total=15.0))


class MetricsShipper:
    def __init__(self, url: str = METRICS_URL, flush_size: int = 500):
        self.url = url
        self.flush_size = flush_size
        self.pool = urllib3.PoolManager(
            retries=Retry(
                total=3,
                backoff_factor=0.5,
                status_forcelist=[502, 503, 504],
                allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"POST", "PATCH"},
            ),
        )

    def _encode(self, series: list[dict]) -> bytes:
        return gzip.compress(json.dumps({"series": series}).encode())

    def ship(self, series: list[dict]) -> int:
        resp = self.pool.request(
            "POST",
            self.url,
            body=self._encode(series),
            headers={**_json_headers(), "Content-Encoding": "gzip"},
        )
        if resp.status >= 400:
            raise UpstreamError(resp.status)
        return len(series)

    def ship_all(self, series: list[dict]) -> int:
        sent = 0
        for start in range(0, len(series), self.flush_size):
            sent += self.ship(series[start : start + self.flush_size])
        return sent


def post_event(event: dict) -> dict:
    last_error: Exception | None = None
    for attempt in range(1, 4):
        try:
            resp = http.request(
                "POST",
                INGEST_URL,
                body=json.dumps(event).encode(),
                headers=_json_headers(),
            )
            if resp.status >= 500:
                raise UpstreamError(resp.status)
            return json.loads(resp.data)
        except (urllib3.exceptions.HTTPError, UpstreamError) as exc:
            last_error = exc
            log.warning("ingest attempt %d failed: %s", attempt, exc)
            time.sleep(0.5 * attempt)
    raise UpstreamError(getattr(last_error, "status", 0)) from last_error


def fetch_manifest(dataset: str) -> dict:
    for attempt in Retrying(
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type((urllib3.exceptions.HTTPError, ManifestUnavailable)),
        reraise=True,
    ):
        with attempt:
            resp = http.request("GET", f"{MANIFEST_URL}/{dataset}.json")
            if resp.status != 200:
                raise ManifestUnavailable(f"{dataset}: HTTP {resp.status}")
    return json.loads(resp.data)


def upload_checkpoint(pipeline: str, offsets: dict[str, int]) -> int:
    body = json.dumps({"pipeline": pipeline, "offsets": offsets}).encode()
    attempts = 0
    while True:
        attempts += 1
        try:
            resp = http.request("PUT", f"{CHECKPOINT_URL}/{pipeline}", body=body, headers=_json_headers())
            if resp.status >= 500:
                raise UpstreamError(resp.status)
            return resp.status
        except (urllib3.exceptions.HTTPError, UpstreamError):
            if attempts >= 5:
                raise
            time.sleep(min(30, 2**attempts))
