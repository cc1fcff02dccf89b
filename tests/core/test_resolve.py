"""Following a thread target into another module with jedi (no code is run)."""

from __future__ import annotations

import textwrap

from gap_ls.core.engine import analyze
from gap_ls.core.resolve import JediResolver

WORKERS = textwrap.dedent(
    """\
    import logging

    log = logging.getLogger(__name__)


    def process(job):
        job.run()


    def guarded(job):
        try:
            job.run()
        except Exception:
            log.exception("job failed")
    """
)
APP = textwrap.dedent(
    """\
    import threading

    from workers import guarded, process


    def start(job):
        threading.Thread(target=process, args=(job,)).start()
        threading.Thread(target=guarded, args=(job,)).start()
    """
)


def test_thread_target_in_another_module(tmp_path):
    (tmp_path / "workers.py").write_text(WORKERS)
    app = tmp_path / "app.py"
    app.write_text(APP)
    # Without a resolver the imported targets cannot be read: nothing is claimed.
    assert analyze(APP, path=app).findings == ()
    findings = analyze(APP, path=app, resolver=JediResolver(tmp_path)).findings
    assert [(f.code, f.span.start.line + 1) for f in findings] == [("GAP104", 7)]
    assert any("resolved with jedi: `workers.process` (workers.py:6)" in fact for fact in findings[0].checked)


def test_unresolvable_names_stay_silent(tmp_path):
    app = tmp_path / "app.py"
    source = "import threading\nfrom nowhere import task\nthreading.Thread(target=task).start()\n"
    app.write_text(source)
    assert analyze(source, path=app, resolver=JediResolver(tmp_path)).findings == ()


GATEWAY = textwrap.dedent(
    """\
    import requests


    def create_charge(order):
        return _post("/charges", {"amount": order.total})


    def _post(path, body):
        return requests.post("https://pay.example.com" + path, json=body, timeout=10)


    def fetch_charge(charge_id):
        return requests.get(f"https://pay.example.com/charges/{charge_id}", timeout=10)
    """
)
CHECKOUT = textwrap.dedent(
    """\
    from tenacity import retry, stop_after_attempt

    from gateway import create_charge, fetch_charge


    @retry(stop=stop_after_attempt(3))
    def pay(order):
        return create_charge(order)


    @retry(stop=stop_after_attempt(3))
    def status(charge_id):
        return fetch_charge(charge_id)
    """
)


def test_retried_call_into_another_module_that_posts(tmp_path):
    (tmp_path / "gateway.py").write_text(GATEWAY)
    checkout = tmp_path / "checkout.py"
    checkout.write_text(CHECKOUT)
    assert analyze(CHECKOUT, path=checkout).findings == ()  # without jedi, the helper is a blank
    findings = analyze(CHECKOUT, path=checkout, resolver=JediResolver(tmp_path)).findings
    assert [(f.code, f.span.start.line + 1) for f in findings] == [("GAP301", 8)]
    assert "in `gateway.create_charge()`" in findings[0].message
    assert any("resolved with jedi: `gateway.create_charge` (gateway.py:4)" in fact for fact in findings[0].checked)
