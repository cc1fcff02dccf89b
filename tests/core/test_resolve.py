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
