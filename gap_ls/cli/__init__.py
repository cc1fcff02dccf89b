"""The `gap-ls` command line: `check` files and folders, `review` a change, `rule CODE`, `rules`.

A thin front end over ``gap_ls.core``: it finds files, resolves settings,
calls ``analyze_bytes`` and renders the findings. Exit codes: 0 no findings,
1 findings, 2 usage, configuration, input or internal errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gap_ls import __version__
from gap_ls.cli import batch, review
from gap_ls.cli.batch import CACHE_DIR
from gap_ls.cli.files import Problem, SettingsResolver, discover
from gap_ls.cli.output import FileResult, render_json, render_sarif, render_text
from gap_ls.core import registry
from gap_ls.core.ruledocs import rule_doc
from gap_ls.core.settings import ConfigError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(value: str) -> tuple[str, ...]:
    return tuple(code.strip() for code in value.split(",") if code.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gap-ls",
        description="Find the gaps AI-written Python leaves behind: swallowed errors, races, retried side effects.",
    )
    parser.add_argument("--version", action="version", version=f"gap-ls {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="analyse files and folders")
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    check.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    check.add_argument("--explain", action="store_true", help="show what was checked and what cannot be verified")
    check.add_argument("--select", type=_codes, help="comma-separated codes, prefixes or families to enable")
    check.add_argument("--ignore", type=_codes, help="comma-separated codes, prefixes or families to disable")
    check.add_argument("--config", type=Path, help="use this pyproject.toml instead of the nearest one")
    check.add_argument("--stdin-filename", metavar="NAME", help="read the source from stdin and report it as NAME")
    check.add_argument("--force-exclude", action="store_true", help="apply `exclude` to paths given explicitly")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    check.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    check.add_argument("--no-cache", action="store_true", help=f"do not read or write {CACHE_DIR}/")
    check.add_argument(
        "--follow-imports",
        action="store_true",
        help="resolve thread targets and jobs defined in other modules with jedi (slower; runs no code)",
    )
    check.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")

    rule = commands.add_parser("rule", help="print a rule's documentation")
    rule.add_argument("code", help="rule code (GAP101) or name (broad-handler-continues)")
    rule.add_argument("--format", choices=("text", "markdown"), default="text")

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP socket instead of stdio (for debugging)")
    serve.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    review.add_parser(commands)

    rules = commands.add_parser("rules", help="list all rules")
    rules.add_argument("--format", choices=("text", "json"), default="text")
    rules.add_argument("--write-docs", type=Path, metavar="DIR", help="write one Markdown page per rule into DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return run_check(args)
    if args.command == "rule":
        return run_rule(args)
    if args.command == "rules":
        return run_rules(args)
    if args.command == "serve":
        return run_serve(args, parser)
    if args.command == "review":
        return review.run_review(args)
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _error(message: str) -> None:
    print(f"gap-ls: {message}", file=sys.stderr)


# -- check ------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    overrides = {"select": args.select, "ignore": args.ignore}
    if args.config is not None and not args.config.is_file():
        _error(f"{args.config}: no such configuration file")
        return EXIT_ERROR
    resolver = SettingsResolver(overrides={k: v for k, v in overrides.items() if v is not None}, config_file=args.config)
    names = _jedi_resolver() if args.follow_imports else None
    problems: list[Problem] = []
    try:
        check = _check_stdin if args.stdin_filename else _check_paths
        results = check(args, resolver, problems, names)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_ERROR
    for warning in dict.fromkeys(resolver.warnings):
        _error(f"warning: {warning}")
    for problem in problems:
        _error(f"{problem.path}: {problem.message}")
    sys.stdout.write(_render(args, results, problems))
    if problems:
        return EXIT_ERROR
    if any(result.findings for result in results) and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _render(args: argparse.Namespace, results: list[FileResult], problems: list[Problem]) -> str:
    if args.format == "json":
        return render_json(results)
    if args.format == "sarif":
        return render_sarif(results, [(p.path, p.message) for p in problems], Path.cwd())
    return render_text(results, args.explain)


def _jedi_resolver():
    from gap_ls.core.resolve import JediResolver

    return JediResolver(Path.cwd())


def _check_paths(
    args: argparse.Namespace, resolver: SettingsResolver, problems: list[Problem], names
) -> list[FileResult]:
    jobs = []
    for path in discover(args.paths or ["."], resolver, args.force_exclude, problems):
        settings = resolver.for_path(path.absolute())
        cache_root = None if args.no_cache else (settings.root or Path.cwd())
        jobs.append(batch.Job(path, settings, cache_root))
    options = batch.Options(follow_imports=names is not None, debug=args.debug)
    results = []
    cache_problems = set()
    for outcome in batch.run(jobs, max(args.jobs, 1), options):
        if outcome.problem is not None:
            problems.append(Problem(str(outcome.path), outcome.problem))
            continue
        if outcome.cache_problem is not None:
            cache_problems.add(outcome.cache_problem)
        results.append(FileResult(_display(outcome.path), outcome.findings, outcome.suppressed))
    for problem in sorted(cache_problems):
        _error(f"warning: cannot write the cache ({problem}); use --no-cache to skip it")
    return results


def _check_stdin(
    args: argparse.Namespace, resolver: SettingsResolver, problems: list[Problem], names
) -> list[FileResult]:
    if args.paths and args.paths != ["-"]:
        raise ConfigError("--stdin-filename reads the source from stdin; do not pass paths as well")
    path = Path(args.stdin_filename)
    analysis = _analyze(sys.stdin.buffer.read(), path, resolver, args.debug, problems, names)
    return [FileResult(args.stdin_filename, analysis.findings, analysis.suppressed)] if analysis is not None else []


def _analyze(
    data: bytes,
    path: Path,
    resolver: SettingsResolver,
    debug: bool,
    problems: list[Problem],
    names,
):
    from gap_ls.core.engine import analyze_bytes

    settings = resolver.for_path(path.absolute())
    try:
        return analyze_bytes(data, settings, path.absolute(), names)
    except Exception as exc:  # noqa: BLE001 - one file's internal error must not stop the run
        problems.append(Problem(str(path), batch.internal_error(exc, debug)))
        return None


def _display(path: Path) -> str:
    if not path.is_absolute():
        return str(path)  # as the user named it (and as discovery joined it), like ruff
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# -- serve -----------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # Logging goes to stderr: stdout belongs to the protocol.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="gap-ls %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    from gap_ls.server.app import main_stdio, main_tcp

    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            parser.error("--tcp takes HOST:PORT, e.g. 127.0.0.1:2087")
        main_tcp(host, int(port))
    else:
        main_stdio()
    return EXIT_CLEAN


# -- rule / rules -------------------------------------------------------------------------------


def run_rule(args: argparse.Namespace) -> int:
    rule = registry.rule_by_code(args.code)
    if rule is None:
        known = ", ".join(r.code for r in registry.all_rules())
        _error(f"unknown rule {args.code!r} (known: {known})")
        return EXIT_ERROR
    doc = rule_doc(rule)
    sys.stdout.write(doc.markdown() if args.format == "markdown" else doc.text())
    return EXIT_CLEAN


def run_rules(args: argparse.Namespace) -> int:
    rules = registry.all_rules()
    if args.write_docs is not None:
        write_rule_docs(args.write_docs)
        print(f"wrote {len(rules) + 1} files to {args.write_docs}")
        return EXIT_CLEAN
    if args.format == "json":
        data = [
            {"code": r.code, "name": r.name, "family": r.family.value, "severity": r.severity.value, "title": r.title}
            for r in rules
        ]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return EXIT_CLEAN
    for rule in rules:
        print(f"{rule.code}  {rule.name:<32} {rule.family.value:<16} {rule.title}")
    return EXIT_CLEAN


def rule_doc_pages() -> dict[str, str]:
    """File name -> content of every generated page in docs/rules/ (the index included)."""
    pages = {f"{rule.code}.md": rule_doc(rule).markdown() for rule in registry.all_rules()}
    index = ["# gap-ls rules", "", "Generated from the rules' docstrings by `gap-ls rules --write-docs docs/rules`.", ""]
    index += ["| Code | Name | Family | What it finds |", "|---|---|---|---|"]
    for rule in registry.all_rules():
        index.append(f"| [{rule.code}]({rule.code}.md) | `{rule.name}` | {rule.family.value} | {rule.title} |")
    pages["README.md"] = "\n".join(index) + "\n"
    return pages


def write_rule_docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in rule_doc_pages().items():
        (folder / name).write_text(content, encoding="utf-8")
