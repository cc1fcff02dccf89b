"""HTTP clients for the catalog service and outbound partner webhooks."""
from __future__ import annotations

import logging
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

_LOGGER = logging.getLogger(__name__)

GEO_URL = "https://geo.example.net/json/{ip}"
WEBHOOK_BACKOFF = (1, 2, 4, 8)


class CatalogUnavailable(Exception):
    pass


class ReportDownloadError(Exception):
    def __init__(self, url: str):
        super().__init__(f"could not download report from {url}")
        self.url = url


class CatalogClient:
    def __init__(self, base_url: str, token: str, max_retries: int = 3):
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.mount("https://", HTTPAdapter(max_retries=Retry(total=2, backoff_factor=0.3)))

    def get_product(self, sku: str) -> dict | None:
        resp = self.session.get(f"{self.base_url}/products/{sku}", timeout=5)
        try:
            resp.raise_for_status()
        except requests.HTTPError:
            if resp.status_code == 404:
                return None
            raise
        return resp.json()

    def list_categories(self) -> list[dict]:
        try:
            resp = self.session.get(f"{self.base_url}/categories", timeout=5)
            resp.raise_for_status()
        except requests.RequestException as exc:
            _LOGGER.warning("category listing failed: %s", exc)
            return []
        return resp.json()["categories"]

    def get_price(self, sku: str) -> float:
        last_exc: Exception | None = None
        for attempt in range(self.max_retries):
            try:
                resp = self.session.get(f"{self.base_url}/prices/{sku}", timeout=3)
                resp.raise_for_status()
                return float(resp.json()["amount"])
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_exc = exc
                time.sleep(0.5 * 2 ** attempt)
        raise CatalogUnavailable(f"price for {sku} unavailable") from last_exc

    def search(self, query: str, limit: int = 50) -> list[dict]:
        try:
            resp = self.session.get(f"{self.base_url}/search", params={"q": query, "limit": limit}, timeout=5)
            resp.raise_for_status()
            return resp.json()["results"]
        except Exception:
            _LOGGER.exception("catalog search failed for %r", query)
            return []


def post_webhook(url: str, payload: dict[str, Any]) -> requests.Response | None:
    for delay in WEBHOOK_BACKOFF:
        try:
            resp = requests.post(url, json=payload, timeout=10)
            if resp.ok:
                return resp
            _LOGGER.info("webhook %s answered %s", url, resp.status_code)
        except requests.RequestException as exc:
            _LOGGER.warning("webhook %s failed: %s; retrying in %ss", url, exc, delay)
        time.sleep(delay)


def is_service_up(health_url: str) -> bool:
    try:
        return requests.get(health_url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def country_for_ip(ip: str) -> str | None:
    try:
        data = requests.get(GEO_URL.format(ip=ip), timeout=2).json()
    except Exception as e:
        print("geo lookup failed:", e)
    return data.get("country_code")


def download_report(url: str, dest: str) -> str:
    try:
        with requests.get(url, stream=True, timeout=30) as r:
            r.raise_for_status()
            with open(dest, "wb") as fh:
                for chunk in r.iter_content(chunk_size=1 << 16):
                    fh.write(chunk)
    except requests.RequestException as e:
        raise ReportDownloadError(url) from e
    return dest


def get_json_or_none(url: str, **params: Any) -> Any | None:
    try:
        resp = requests.get(url, params=params, timeout=5)
        resp.raise_for_status()
        return resp.json()
    except Exception:
        return None


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=5),
    retry=retry_if_exception_type(requests.RequestException),
    reraise=True,
)
def fetch_inventory(base_url: str, warehouse: str) -> dict[str, int]:
    resp = requests.get(f"{base_url}/warehouses/{warehouse}/inventory", timeout=10)
    resp.raise_for_status()
    return {row["sku"]: row["on_hand"] for row in resp.json()["items"]}
