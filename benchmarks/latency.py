"""Editor latency: a real LSP client over stdio against `gap-ls serve` (and others, side by side).

For generated 1k, 5k and 20k-line files (benchmarks/corpus.py) it measures:
- time to first diagnostics after didOpen;
- didChange -> diagnostics for 50 single-character and 50 whole-line edits in the middle of a
  function: p50/p95/max. Pull diagnostics (textDocument/diagnostic) where the server supports
  them, so no debounce is counted; push otherwise (the server's debounce is then included and
  reported in the `debounce` column);
- a storm of 30 changes sent at once (push mode): latency to the final version's diagnostics and
  how many publishes it took;
- peak RSS of the server process.

    python benchmarks/latency.py [--server gap-ls|ruff|pylsp ...] [--sizes 1000 5000 20000] [--runs 3]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import subprocess
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import build, middle_function_line  # noqa: E402

SERVERS = {
    "gap-ls": ([sys.executable, "-m", "gap_ls", "serve"], 0.2),
    "ruff": ([sys.executable, "-m", "ruff", "server"], 0.0),
    "pylsp": ([sys.executable, "-m", "pylsp"], 0.5),
}
EDITS = 50
STORM = 30


def capabilities(pull: bool) -> dict:
    text_document = {
        "synchronization": {"didSave": True},
        "publishDiagnostics": {"versionSupport": True},
    }
    if pull:
        text_document["diagnostic"] = {}
    return {"general": {"positionEncodings": ["utf-16"]}, "textDocument": text_document}


class Session:
    """A minimal JSON-RPC client over the server's stdio: no typed structuring, so any server's
    answers are accepted as they are (pygls's client rejects some of ruff's capabilities)."""

    def __init__(self, command: list[str], pull: bool) -> None:
        self.command = command
        self.pull = pull
        self.process: asyncio.subprocess.Process | None = None
        self.publish_count = 0
        self.waiters: list[tuple[int, asyncio.Future]] = []
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def start(self, root: Path) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.create_task(self._read())
        self._reader.add_done_callback(self._reader_done)
        folder = {"uri": root.as_uri(), "name": "bench"}
        params = {"processId": None, "rootUri": root.as_uri(), "workspaceFolders": [folder],
                  "capabilities": capabilities(self.pull)}
        await self.request("initialize", params)
        self.notify("initialized", {})

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.request("shutdown", None), 10)
            self.notify("exit", None)
            await asyncio.wait_for(self.process.wait(), 10)
        except asyncio.TimeoutError:
            print(f"note: {self.command[-1]} did not shut down in time; killing it", file=sys.stderr)
            self.process.kill()
        if self._reader is not None:
            self._reader.cancel()

    def rss_mb(self) -> float | None:
        status = Path(f"/proc/{self.process.pid}/status").read_text()  # Linux: peak RSS is VmHWM
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def _reader_done(self, task: asyncio.Task) -> None:
        """A reader that dies would leave every wait hanging: say why, and fail the waits."""
        if task.cancelled() or task.exception() is None:
            return
        print(f"note: reading from {self.command[-1]} failed: {task.exception()!r}", file=sys.stderr)
        for future in [*self._pending.values(), *(f for _, f in self.waiters)]:
            if not future.done():
                future.set_exception(RuntimeError("the server connection failed"))

    # -- JSON-RPC -------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params):
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return await future

    async def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = 0
            while True:
                header = await stream.readline()
                if not header:
                    return
                if header in (b"\r\n", b"\n"):
                    break
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            message = json.loads(await stream.readexactly(length))
            self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        now = time.perf_counter()
        if "id" in message and "method" not in message:
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message.get("result"))
            return
        method = message.get("method")
        if "id" in message:  # a request from the server: configuration, registrations, progress
            result = [None for _ in message["params"]["items"]] if method == "workspace/configuration" else None
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        if method == "textDocument/publishDiagnostics":
            self.publish_count += 1
            version = message["params"].get("version")
            for wanted, future in list(self.waiters):
                if (version is None or version >= wanted) and not future.done():
                    future.set_result(now)

    # -- documents --------------------------------------------------------------------------------
    def did_open(self, uri: str, text: str) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})

    def did_change(self, uri: str, version: int, changes: list[dict]) -> None:
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes})

    async def diagnostics_after(self, uri: str, version: int, send) -> float:
        """Seconds from ``send()`` until diagnostics for ``version`` arrive."""
        if self.pull:
            start = time.perf_counter()
            send()
            await self.request("textDocument/diagnostic", {"textDocument": {"uri": uri}})
            return time.perf_counter() - start
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((version, future))
        start = time.perf_counter()
        send()
        end = await asyncio.wait_for(future, 60)
        self.waiters.remove((version, future))
        return end - start


def change(line: int, start: int, end_line: int, end: int, text: str) -> dict:
    return {"range": {"start": {"line": line, "character": start}, "end": {"line": end_line, "character": end}}, "text": text}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def commit(root: Path) -> None:
    """Make ``root`` a git repository with its files committed (gap-ls then compares each open
    buffer with the file at HEAD, as it does in a user's checkout)."""
    for args in (["init", "-q"], ["add", "."], ["-c", "user.email=bench@example.com", "-c", "user.name=bench",
                                               "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


async def measure(server: str, size: int, pull: bool, git: bool = False) -> dict:
    command, debounce = SERVERS[server]
    text = build(size)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / f"generated_{size}.py"
        path.write_text(text, encoding="utf-8")
        if git:
            commit(root)
        uri = path.as_uri()
        session = Session(command, pull)
        await session.start(root)
        lines = text.splitlines(keepends=True)
        version = 1
        first = await session.diagnostics_after(uri, 1, lambda: session.did_open(uri, text))
        target = middle_function_line(text)
        line = lines[target]
        column = len(line) - len(line.lstrip())
        single, whole = [], []
        for index in range(EDITS):
            version += 1
            insert = index % 2 == 0  # type "x" at the start of the statement, then delete it again
            edit = change(target, column, target, column + (0 if insert else 1), "x" if insert else "")
            single.append(await session.diagnostics_after(uri, version, _sender(session, uri, version, [edit])))
        for index in range(EDITS):
            version += 1
            edit = change(target, 0, target + 1, 0, line.rstrip("\n") + f"  # edit {index}\n")
            whole.append(await session.diagnostics_after(uri, version, _sender(session, uri, version, [edit])))
        rss = session.rss_mb()
        await session.stop()
    return {
        "first_s": first,
        "single": single,
        "whole": whole,
        "rss_mb": rss,
        "debounce_s": 0.0 if pull else debounce,
        "mode": "pull" if pull else "push",
    }


async def storm(server: str, size: int) -> dict:
    """30 changes at once to a push client: when do the final version's diagnostics arrive, and
    how many publishes did it take."""
    command, debounce = SERVERS[server]
    text = build(size)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / f"storm_{size}.py"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        session = Session(command, pull=False)
        await session.start(root)
        await session.diagnostics_after(uri, 1, lambda: session.did_open(uri, text))
        target = middle_function_line(text)
        session.publish_count = 0
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        final = STORM + 1
        session.waiters.append((final, future))
        start = time.perf_counter()
        line = text.splitlines(keepends=True)[target]
        column = len(line) - len(line.lstrip())
        for version in range(2, final + 1):
            insert = version % 2 == 0  # type "x", delete it, ... (the final version is the original text)
            edit = change(target, column, target, column + (0 if insert else 1), "x" if insert else "")
            session.did_change(uri, version, [edit])
        end = await asyncio.wait_for(future, 60)
        await asyncio.sleep(debounce + 0.3)  # anything published after the final version would count
        publishes = session.publish_count
        await session.stop()
    return {"latency_s": end - start, "publishes": publishes}


def _sender(session: Session, uri: str, version: int, changes: list):
    return lambda: session.did_change(uri, version, changes)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def main_async(args: argparse.Namespace) -> dict:
    results: dict = {}
    print(f"{'server':<8} {'lines':>6} {'mode':<5} {'first ms':>9} {'1-char p50':>10} {'p95':>7} {'max':>7} "
          f"{'line p50':>9} {'p95':>7} {'max':>7} {'debounce':>9} {'RSS MB':>7}")
    for server in args.server:
        pull = server != "pylsp"
        for size in args.sizes:
            runs = [await measure(server, size, pull, args.git) for _ in range(args.runs)]
            row = {
                "first_ms": statistics.median(r["first_s"] for r in runs) * 1000,
                "single_p50_ms": statistics.median(percentile(r["single"], 0.5) for r in runs) * 1000,
                "single_p95_ms": statistics.median(percentile(r["single"], 0.95) for r in runs) * 1000,
                "single_max_ms": statistics.median(max(r["single"]) for r in runs) * 1000,
                "line_p50_ms": statistics.median(percentile(r["whole"], 0.5) for r in runs) * 1000,
                "line_p95_ms": statistics.median(percentile(r["whole"], 0.95) for r in runs) * 1000,
                "line_max_ms": statistics.median(max(r["whole"]) for r in runs) * 1000,
                "debounce_ms": runs[0]["debounce_s"] * 1000,
                "mode": runs[0]["mode"],
                "rss_mb": max((r["rss_mb"] or 0) for r in runs),
            }
            results.setdefault(server, {})[str(size)] = row
            print(f"{server:<8} {size:>6} {row['mode']:<5} {row['first_ms']:>9.0f} {row['single_p50_ms']:>10.1f} "
                  f"{row['single_p95_ms']:>7.1f} {row['single_max_ms']:>7.1f} {row['line_p50_ms']:>9.1f} "
                  f"{row['line_p95_ms']:>7.1f} {row['line_max_ms']:>7.1f} {row['debounce_ms']:>9.0f} {row['rss_mb']:>7.0f}")
        if args.storm and server != "ruff":
            outcome = await storm(server, max(args.sizes))
            results[server]["storm"] = {"latency_ms": outcome["latency_s"] * 1000, "publishes": outcome["publishes"]}
            print(f"{server:<8} storm of {STORM} changes on {max(args.sizes)} lines: final diagnostics after "
                  f"{outcome['latency_s'] * 1000:.0f} ms, {outcome['publishes']} publish(es)")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", nargs="+", default=["gap-ls"], choices=sorted(SERVERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000, 20000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-storm", dest="storm", action="store_false")
    parser.add_argument("--git", action="store_true", help="open the file in a git checkout (gap-ls compares with HEAD)")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
