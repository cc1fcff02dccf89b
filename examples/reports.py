"""Nightly report export: threads, cleanup and a suppressed finding with its reason."""

import contextlib
import logging
import os
import threading

log = logging.getLogger("reports")


def render(report_id: int) -> bytes:
    return b"%d" % report_id


def export(report_id: int, path: str) -> None:
    with open(path, "wb") as handle:
        handle.write(render(report_id))


def export_all(report_ids: list[int], folder: str) -> None:
    for report_id in report_ids:
        threading.Thread(target=export, args=(report_id, os.path.join(folder, f"{report_id}.csv"))).start()


def remove_stale(path: str) -> None:
    with contextlib.suppress(Exception):
        os.remove(path)


def remove_if_present(path: str) -> None:
    """Near miss: a missing file is exactly what we wanted."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def archive(path: str) -> None:
    try:
        os.rename(path, path + ".bak")
    except Exception:  # gap: ignore[GAP103] the archive is a courtesy copy; the export already succeeded
        pass
