"""pricesync: nightly command-line sync of supplier prices into a local state file.

Run from cron as a single process: `pricesync sync --supplier acme`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import requests

STATE_FILE = Path(os.environ.get("PRICESYNC_STATE", Path.home() / ".pricesync" / "state.json"))
COUNTERS_CSV = Path(os.environ.get("PRICESYNC_COUNTERS", Path.home() / ".pricesync" / "counters.csv"))
SUPPLIER_API = "https://supplier.example.com/api/v1/prices"

_session: requests.Session | None = None
_requests_made = 0


def http() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = "pricesync/1.4"
    return _session


def fetch_prices(supplier: str) -> dict[str, float]:
    global _requests_made
    resp = http().get(SUPPLIER_API, params={"supplier": supplier}, timeout=30)
    resp.raise_for_status()
    _requests_made += 1
    return {row["sku"]: float(row["price"]) for row in resp.json()["items"]}


def cmd_sync(args: argparse.Namespace) -> int:
    if not STATE_FILE.parent.exists():
        os.makedirs(STATE_FILE.parent)
    if not STATE_FILE.exists():
        STATE_FILE.write_text("{}", encoding="utf-8")
    with open(STATE_FILE, encoding="utf-8") as fh:
        state = json.load(fh)
    prices = fetch_prices(args.supplier)
    state.setdefault("prices", {}).update(prices)
    state["runs"] = state.get("runs", 0) + 1
    with open(STATE_FILE, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
    print(f"synced {len(prices)} prices from {args.supplier}")
    return 0


def cmd_bump(args: argparse.Namespace) -> int:
    counts: dict[str, int] = {}
    if COUNTERS_CSV.exists():
        with COUNTERS_CSV.open(newline="", encoding="utf-8") as fh:
            counts = {row["name"]: int(row["value"]) for row in csv.DictReader(fh)}
    counts[args.name] = counts.get(args.name, 0) + args.by
    with COUNTERS_CSV.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["name", "value"])
        writer.writeheader()
        writer.writerows({"name": k, "value": v} for k, v in sorted(counts.items()))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    if os.path.exists(STATE_FILE):
        os.remove(STATE_FILE)
        print(f"removed {STATE_FILE}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
    state = json.loads(STATE_FILE.read_text(encoding="utf-8"))
    with (out_dir / "prices.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku", "price"])
        writer.writerows(sorted(state.get("prices", {}).items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pricesync")
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser("sync")
    sync.add_argument("--supplier", required=True)
    sync.set_defaults(func=cmd_sync)
    bump = sub.add_parser("bump")
    bump.add_argument("name")
    bump.add_argument("--by", type=int, default=1)
    bump.set_defaults(func=cmd_bump)
    reset = sub.add_parser("reset")
    reset.set_defaults(func=cmd_reset)
    export = sub.add_parser("export")
    export.add_argument("--out", default="exports")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    print(f"{_requests_made} supplier request(s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
