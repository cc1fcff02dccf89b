"""A test suite's own files are not shared state: a file check-then-act in a test module, or in a
test's set-up/tear-down, stays silent unless the code shows threads (the module here imports
Django, which otherwise makes it a concurrent application)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gap_ls.core.engine import analyze
from gap_ls.core.settings import Settings

SOURCE = textwrap.dedent(
    """\
    import os
    import shutil

    from django.http import JsonResponse

    MEDIA = "/tmp/media"


    def reset_media():
        if os.path.exists(MEDIA):
            shutil.rmtree(MEDIA)


    class MediaTests:
        def setUp(self):
            if not os.path.exists(MEDIA):
                os.makedirs(MEDIA)
    """
)


def codes(path: Path, settings: Settings | None = None) -> list[tuple[str, int]]:
    found = analyze(SOURCE, settings or Settings(select=("GAP203",)), path=path).findings
    return [(f.code, f.span.start.line + 1) for f in found]


def test_in_application_code_the_function_is_flagged(tmp_path):
    assert codes(tmp_path / "media.py") == [("GAP203", 11)]


def test_in_a_test_module_neither_is(tmp_path):
    assert codes(tmp_path / "test_media.py") == []
    assert codes(tmp_path / "conftest.py") == []


def test_set_up_is_test_code_wherever_it_is(tmp_path):
    assert codes(tmp_path / "media_checks.py") == [("GAP203", 11)]  # setUp stays silent, the function does not


def test_a_tests_folder_counts_only_inside_the_project(tmp_path):
    project = tmp_path / "tests" / "project"  # a checkout that happens to live under tests/
    (project / "tests").mkdir(parents=True)
    settings = Settings(select=("GAP203",), root=project)
    assert codes(project / "tests" / "helpers.py", settings) == []
    assert codes(project / "app" / "media.py", settings) == [("GAP203", 11)]
