"""The `gap-ls` command line, driven as a user would: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_gap_ls

GAP = textwrap.dedent(
    """\
    import logging
    log = logging.getLogger(__name__)

    def load(path):
        try:
            return read(path)
        except Exception:
            log.exception("load failed")
            return None
    """
)
CLEAN = "def add(a, b):\n    return a + b\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_examples_report_gaps_with_explanations():
    run = run_gap_ls("check", "examples", "--explain")
    assert run.code == 1, run.err
    assert "examples/billing.py:17:5: GAP102" in run.out
    assert "    checked: " in run.out and "    cannot verify: " in run.out
    assert {"GAP101", "GAP102", "GAP103", "GAP104", "GAP105", "GAP106", "GAP107"} <= set(run.out.split())
    assert "Traceback" not in run.err


def test_clean_file_exits_zero(tmp_path):
    write(tmp_path, "ok.py", CLEAN)
    run = run_gap_ls("check", str(tmp_path))
    assert run.code == 0, run.out + run.err
    assert "No gaps found in 1 file checked." in run.out


def test_text_output_is_path_line_col_code_message(tmp_path):
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "gap.py", cwd=tmp_path)
    assert run.code == 1
    assert run.out.splitlines()[0].startswith("gap.py:7:5: GAP102 `except Exception` logs at ERROR")


def test_python_dash_m_and_version():
    run = run_gap_ls("--version")
    assert run.code == 0 and run.out.startswith("gap-ls ")


def test_json_output(tmp_path):
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "--format", "json", "gap.py", cwd=tmp_path)
    assert run.code == 1
    [finding] = json.loads(run.out)
    assert finding["code"] == "GAP102" and finding["family"] == "swallowed-error"
    assert finding["location"] == {"line": 7, "column": 5}
    assert finding["end_location"] == {"line": 7, "column": 21}
    assert any("every caller treats `None` as a failure" in note for note in finding["unverifiable"])
    assert finding["related"][0]["location"]["line"] == 9
    assert finding["fixes"][0]["kind"] == "reraise"


def test_select_and_ignore(tmp_path):
    write(tmp_path, "gap.py", GAP)
    assert run_gap_ls("check", "--ignore", "GAP102", "gap.py", cwd=tmp_path).code == 0
    assert run_gap_ls("check", "--select", "GAP101", "gap.py", cwd=tmp_path).code == 0
    assert run_gap_ls("check", "--select", "swallowed-error", "gap.py", cwd=tmp_path).code == 1
    run = run_gap_ls("check", "--select", "GAP1", "--ignore", "GAP10", "gap.py", cwd=tmp_path)
    assert run.code == 0
    run = run_gap_ls("check", "--select", "GAP999", "gap.py", cwd=tmp_path)
    assert "unknown rule code 'GAP999'" in run.err


def test_stdin_filename(tmp_path):
    run = run_gap_ls("check", "--stdin-filename", "buffer.py", "-", stdin=GAP.encode(), cwd=tmp_path)
    assert run.code == 1
    assert run.out.startswith("buffer.py:7:5: GAP102")


def test_syntax_error_gives_one_gap000_and_the_run_goes_on(tmp_path):
    write(tmp_path, "broken.py", "def f(:\n    pass\n")
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "--format", "json", ".", cwd=tmp_path)
    assert run.code == 1, run.err
    findings = json.loads(run.out)
    assert [(f["path"], f["code"]) for f in findings] == [("broken.py", "GAP000"), ("gap.py", "GAP102")]
    assert findings[0]["location"]["line"] == 1
    assert "Traceback" not in run.err


def test_non_utf8_file_is_reported_not_crashed(tmp_path):
    write(tmp_path, "latin.py", b"name = '\xe9t\xe9'\n")
    run = run_gap_ls("check", "latin.py", cwd=tmp_path)
    assert run.code == 1
    assert "GAP000" in run.out and "not valid utf-8" in run.out
    assert "Traceback" not in run.err


def test_declared_encoding_is_honoured(tmp_path):
    write(tmp_path, "latin.py", b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n")
    write(tmp_path, "bom.py", b"\xef\xbb\xbf" + CLEAN.encode())
    run = run_gap_ls("check", ".", cwd=tmp_path)
    assert run.code == 0, run.out + run.err


def test_null_bytes_are_a_gap000(tmp_path):
    write(tmp_path, "nul.py", b"x = 1\x00\n")
    run = run_gap_ls("check", "nul.py", cwd=tmp_path)
    assert run.code == 1 and "GAP000" in run.out and "Traceback" not in run.err


def test_empty_file(tmp_path):
    write(tmp_path, "empty.py", "")
    run = run_gap_ls("check", "empty.py", cwd=tmp_path)
    assert run.code == 0 and "No gaps found in 1 file checked." in run.out


def test_twenty_thousand_line_file(tmp_path):
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(6700))
    write(tmp_path, "huge.py", body + GAP)
    assert len((tmp_path / "huge.py").read_text().splitlines()) > 20_000
    run = run_gap_ls("check", "--format", "json", "huge.py", cwd=tmp_path)
    assert run.code == 1, run.err
    [finding] = json.loads(run.out)
    assert finding["code"] == "GAP102" and finding["location"]["line"] == 20100 + 7


def test_missing_path_is_a_usage_error(tmp_path):
    write(tmp_path, "ok.py", CLEAN)
    run = run_gap_ls("check", "ok.py", "nope.py", cwd=tmp_path)
    assert run.code == 2
    assert "gap-ls: nope.py: no such file or directory" in run.err
    assert "No gaps found in 1 file checked." in run.out


def test_symlink_loop_is_a_message(tmp_path):
    os.symlink(tmp_path / "a", tmp_path / "b")
    os.symlink(tmp_path / "b", tmp_path / "a")
    write(tmp_path, "ok.py", CLEAN)
    run = run_gap_ls("check", "a", "ok.py", cwd=tmp_path)
    assert run.code == 2
    assert "gap-ls: a: " in run.err and "Traceback" not in run.err


def test_symlinked_folder_cycle_is_not_followed(tmp_path):
    write(tmp_path, "pkg/mod.py", GAP)
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "again")
    run = run_gap_ls("check", "--format", "json", ".", cwd=tmp_path)
    assert run.code == 1
    assert [f["path"] for f in json.loads(run.out)] == ["pkg/mod.py"]


def test_broken_pyproject_is_a_clear_error(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.gap-ls\nselect = [\n")
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "gap.py", cwd=tmp_path)
    assert run.code == 2
    assert "pyproject.toml: invalid TOML" in run.err
    assert "Traceback" not in run.err


def test_wrongly_typed_setting_is_a_clear_error(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.gap-ls]\nselect = 5\n")
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "gap.py", cwd=tmp_path)
    assert run.code == 2
    assert "`select` must be a list of strings" in run.err


def test_unknown_keys_and_codes_are_warnings(tmp_path):
    write(tmp_path, "pyproject.toml", '[tool.gap-ls]\nselekt = ["GAP1"]\nignore = ["GAP777"]\n')
    write(tmp_path, "gap.py", GAP)
    run = run_gap_ls("check", "gap.py", cwd=tmp_path)
    assert run.code == 1
    assert "unknown key 'selekt'" in run.err
    assert "unknown rule code 'GAP777'" in run.err


def test_pyproject_settings_apply(tmp_path):
    write(
        tmp_path,
        "pyproject.toml",
        '[tool.gap-ls]\nexclude = ["generated"]\n[tool.gap-ls.severity]\nGAP102 = "error"\n'
        '[tool.gap-ls.per-file-ignores]\n"legacy/*" = ["GAP102"]\n',
    )
    write(tmp_path, "app/gap.py", GAP)
    write(tmp_path, "generated/gap.py", GAP)
    write(tmp_path, "legacy/gap.py", GAP)
    write(tmp_path, ".venv/lib/gap.py", GAP)
    write(tmp_path, "node_modules/x/gap.py", GAP)
    run = run_gap_ls("check", "--format", "json", ".", cwd=tmp_path)
    findings = json.loads(run.out)
    assert [(f["path"], f["severity"]) for f in findings] == [("app/gap.py", "error")]
    # A folder named on the command line is checked even though `exclude` lists it.
    run = run_gap_ls("check", "--format", "json", "generated", cwd=tmp_path)
    assert [f["path"] for f in json.loads(run.out)] == ["generated/gap.py"]
    run = run_gap_ls("check", "--force-exclude", "generated/gap.py", cwd=tmp_path)
    assert run.code == 0


def test_config_option(tmp_path):
    write(tmp_path, "strict.toml", '[tool.gap-ls]\nignore = ["GAP102"]\n')
    write(tmp_path, "gap.py", GAP)
    assert run_gap_ls("check", "--config", "strict.toml", "gap.py", cwd=tmp_path).code == 0
    run = run_gap_ls("check", "--config", "missing.toml", "gap.py", cwd=tmp_path)
    assert run.code == 2 and "no such configuration file" in run.err


def test_usage_errors_exit_two():
    assert run_gap_ls("check", "--format", "xml").code == 2
    assert run_gap_ls().code == 2


def test_rule_documentation():
    run = run_gap_ls("rule", "GAP101")
    assert run.code == 0
    for heading in ("What it does", "Why is this bad?", "What gap-ls cannot verify", "Example", "Use instead"):
        assert heading in run.out
    assert run_gap_ls("rule", "broad-handler-continues").out == run.out
    run = run_gap_ls("rule", "GAP999")
    assert run.code == 2 and "unknown rule 'GAP999'" in run.err


def test_rules_listing():
    run = run_gap_ls("rules")
    assert run.code == 0
    codes = [line.split()[0] for line in run.out.splitlines()]
    assert codes[:2] == ["GAP000", "GAP001"] and "GAP107" in codes
    listed = json.loads(run_gap_ls("rules", "--format", "json").out)
    assert {r["code"] for r in listed} == set(codes)


@pytest.mark.parametrize("flag", ["--exit-zero"])
def test_exit_zero(tmp_path, flag):
    write(tmp_path, "gap.py", GAP)
    assert run_gap_ls("check", flag, "gap.py", cwd=tmp_path).code == 0


def test_suppressed_findings_are_counted_and_kept_in_json(tmp_path):
    write(tmp_path, "gap.py", GAP.replace("except Exception:", "except Exception:  # gap: ignore[GAP102] legacy API contract"))
    run = run_gap_ls("check", "gap.py", cwd=tmp_path)
    assert run.code == 0 and "(1 suppressed)" in run.out
    [finding] = json.loads(run_gap_ls("check", "--format", "json", "gap.py", cwd=tmp_path).out)
    assert finding["suppressed"] == {"style": "gap", "reason": "legacy API contract"}


def test_repository_check_is_clean():
    """We practise what we flag: the repository, corpus and examples excluded by its config, is clean."""
    run = run_gap_ls("check", ".", cwd=ROOT)
    assert run.code == 0, run.out + run.err


def test_sarif_is_valid_2_1_0(tmp_path):
    write(tmp_path, "gap.py", GAP)
    write(tmp_path, "quiet.py", GAP.replace("except Exception:", "except Exception:  # gap: ignore[GAP102] tolerated"))
    run = run_gap_ls("check", "--format", "sarif", ".", cwd=tmp_path)
    assert run.code == 1, run.err
    log = json.loads(run.out)
    # The structure SARIF 2.1.0 requires (sections 3.13-3.30 of the OASIS standard).
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    [sarif_run] = log["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "gap-ls"
    rules = driver["rules"]
    assert [r["id"] for r in rules] == sorted(r["id"] for r in rules)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert "What gap-ls cannot verify" in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note", "none"}
    results = sarif_run["results"]
    assert len(results) == 2
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "GAP102"
        assert result["level"] in {"error", "warning", "note", "none"}
        assert result["message"]["text"]
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] in {"gap.py", "quiet.py"}
        assert physical["artifactLocation"]["uriBaseId"] in sarif_run["originalUriBaseIds"]
        region = physical["region"]
        assert region == {"startLine": 7, "startColumn": 5, "endLine": 7, "endColumn": 21}
        assert result["properties"]["unverifiable"]
        assert result["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 9
    suppressed = [r for r in results if "suppressions" in r]
    assert [s["suppressions"] for s in suppressed] == [[{"kind": "inSource", "justification": "tolerated"}]]
    assert sarif_run["columnKind"] == "unicodeCodePoints"
    # An independent reading of the standard: the sarif-pydantic models accept the log.
    from sarif_pydantic import Sarif

    parsed = Sarif.model_validate(log)
    assert parsed.runs[0].results[0].rule_id == "GAP102"


def test_too_deeply_nested_code_is_reported_not_crashed(tmp_path):
    body = " + ".join(["a"] * 1500)
    write(tmp_path, "deep.py", f"def f():\n    try:\n        return {body}\n    except Exception:\n        return None\n")
    run = run_gap_ls("check", "deep.py", cwd=tmp_path)
    assert run.code == 1, run.err
    assert "GAP000 Statement too deeply nested for gap-ls to analyse" in run.out
    assert "Traceback" not in run.err and "internal error" not in run.err


def test_follow_imports_reads_other_modules(tmp_path):
    write(tmp_path, "workers.py", "def process(job):\n    job.run()\n")
    write(tmp_path, "app.py", "import threading\nfrom workers import process\nthreading.Thread(target=process).start()\n")
    assert run_gap_ls("check", "app.py", cwd=tmp_path).code == 0
    run = run_gap_ls("check", "--follow-imports", "--explain", "app.py", cwd=tmp_path)
    assert run.code == 1 and "resolved with jedi: `workers.process`" in run.out


def test_cache_and_parallel_runs_agree(tmp_path):
    for index in range(12):
        write(tmp_path, f"pkg/m{index:02}.py", f"# module {index}\n" + (GAP if index % 3 == 0 else CLEAN))
    cold = run_gap_ls("check", "--format", "json", "--jobs", "1", "pkg", cwd=tmp_path)
    entries = list((tmp_path / ".gap_ls_cache").rglob("*.json"))
    assert len(entries) == 12 and (tmp_path / ".gap_ls_cache" / ".gitignore").exists()
    warm = run_gap_ls("check", "--format", "json", "--jobs", "1", "pkg", cwd=tmp_path)
    parallel = run_gap_ls("check", "--format", "json", "--jobs", "2", "--no-cache", "pkg", cwd=tmp_path)
    assert cold.out == warm.out == parallel.out
    assert len(json.loads(cold.out)) == 4
    # A damaged entry is a miss: the file is analysed again.
    for entry in entries:
        entry.write_text("{not json")
    assert run_gap_ls("check", "--format", "json", "pkg", cwd=tmp_path).out == cold.out


def test_no_cache_writes_nothing(tmp_path):
    write(tmp_path, "gap.py", GAP)
    run_gap_ls("check", "--no-cache", "gap.py", cwd=tmp_path)
    assert not (tmp_path / ".gap_ls_cache").exists()
