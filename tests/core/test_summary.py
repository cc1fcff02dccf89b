"""The module summary rules read: imports, loggers, locks, executors, classes, functions."""

from __future__ import annotations

import ast
import textwrap

from gap_ls.core.summary import summarize

SOURCE = textwrap.dedent(
    """\
    import asyncio as aio
    import logging
    import threading
    from concurrent.futures import ThreadPoolExecutor as Pool
    from tenacity import retry as r
    from typing import NoReturn

    try:
        import ujson as json
    except ImportError:
        import json

    log = logging.getLogger(__name__)
    pool = Pool(max_workers=2)
    _lock = threading.Lock()
    counter = 0

    def fail(message) -> NoReturn:
        raise SystemExit(message)

    def worker(queue):
        while True:
            try:
                queue.get()()
            except Exception:
                log.exception("job failed")

    class Account:
        def __init__(self):
            self._balance_lock = threading.RLock()
            self.logger = logging.getLogger("account")

        @r(stop=3)
        async def refresh(self):
            def inner():
                pass
            task = aio.create_task(self.load())
            await task
            await aio.get_running_loop().run_in_executor(None, self.load_all)

    threading.Thread(target=worker, args=(None,)).start()
    """
)


def test_summary():
    summary = summarize(ast.parse(SOURCE))
    assert summary.imports["r"] == "tenacity.retry"
    assert summary.imports["json"] == "ujson"
    assert summary.qualify("aio.create_task") == "asyncio.create_task"
    assert summary.qualify("Exception") == "builtins.Exception"
    assert summary.loggers == {"log", "logger"}
    assert summary.locks == {"_lock": "threading.Lock"}
    assert summary.executors == {"pool"}
    assert {"log", "pool", "_lock", "counter"} <= summary.globals
    assert summary.classes["Account"].lock_attributes == {"_balance_lock"}
    assert [summary.qualify(d) for d in summary.function("Account.refresh").decorators] == ["tenacity.retry"]
    assert summary.function("Account.refresh").is_async
    assert summary.function("Account.refresh.inner") is not None
    assert summary.function("fail").never_returns
    assert summary.function("worker").handles_errors
    assert not summary.function("fail").handles_errors
    assert "task" in summary.observed
    assert summary.entry_points == {"worker", "self.load_all"}
    assert summary.resolve_function("self.refresh", "Account.__init__", "Account").name == "refresh"
    assert summary.resolve_function("inner", "Account.refresh", "Account").qualname == "Account.refresh.inner"
