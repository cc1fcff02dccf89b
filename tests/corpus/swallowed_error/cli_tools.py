"""`acmectl`: operator command line for imports, backups and cache maintenance."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from acme.api import ApiClient
from acme.builder import rebuild
from acme.users import create_user
from acme.products import upsert_product

CONFIG_PATH = Path("~/.config/acmectl/config.toml").expanduser()


def tool_version() -> str:
    try:
        return version("acmectl")
    except PackageNotFoundError:
        return "0.0.0+local"


def load_config(path: Path = CONFIG_PATH) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except Exception as e:
        click.echo(f"warning: could not read {path}: {e}", err=True)
        return {}


def env_json(name: str, default: object = None) -> object:
    """Parse a JSON-valued environment variable, falling back to the caller's default."""
    try:
        return json.loads(os.environ[name])
    except Exception:
        return default


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


@click.group()
@click.version_option(tool_version())
@click.pass_context
def cli(ctx: click.Context) -> None:
    ctx.obj = ApiClient.from_config({**load_config(), **env_json("ACMECTL_OVERRIDES", {})})


@cli.command("import-users")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
def import_users(csv_path: str) -> None:
    with open(csv_path, newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            try:
                create_user(email=row["email"], name=row["name"], role=row.get("role", "member"))
            except Exception as e:
                click.echo(f"row {n}: {e}", err=True)
                continue
            click.echo(f"created {row['email']}")


@cli.command("import-products")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
def import_products(csv_path: str) -> None:
    failed = 0
    with open(csv_path, newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            try:
                upsert_product(sku=row["sku"], title=row["title"], price=row["price"])
            except Exception as e:
                failed += 1
                click.echo(f"row {n}: {e}", err=True)
    if failed:
        raise click.ClickException(f"{failed} rows failed to import")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="backups")
def backup(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    dest = Path(out) / f"acme-{time.strftime('%Y%m%d-%H%M%S')}.dump"
    try:
        subprocess.run(["pg_dump", "--format=custom", "--file", str(dest), os.environ["DATABASE_URL"]], check=True)
    except subprocess.CalledProcessError as e:
        click.echo(f"pg_dump exited with {e.returncode}", err=True)
        sys.exit(e.returncode)
    click.echo(f"wrote {dest}")


@cli.command("purge-cache")
@click.argument("cache_dir", type=click.Path(file_okay=False))
def purge_cache(cache_dir: str) -> None:
    removed = 0
    for entry in Path(cache_dir).glob("**/*.cache"):
        with suppress(Exception):
            entry.unlink()
            removed += 1
    click.echo(f"removed {removed} cache files")


@cli.command()
@click.argument("pidfile", type=click.Path(dir_okay=False))
def stop_daemon(pidfile: str) -> None:
    pid = read_pid(Path(pidfile))
    if pid is None:
        raise click.ClickException("daemon is not running")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    Path(pidfile).unlink(missing_ok=True)


@cli.command()
@click.option("--retries", default=3, show_default=True)
@click.pass_obj
def sync(api: ApiClient, retries: int) -> None:
    for attempt in range(1, retries + 1):
        try:
            api.sync_all()
            break
        except Exception as e:
            click.echo(f"sync attempt {attempt} failed: {e}", err=True)
            time.sleep(attempt * 5)
    else:
        raise click.ClickException(f"sync failed after {retries} attempts")
    click.echo("sync complete")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
def watch(paths: tuple[str, ...]) -> None:
    from watchfiles import watch as watch_changes

    def on_change(path: str) -> None:
        try:
            rebuild(path)
            click.echo(f"rebuilt {path}")
        except Exception as e:
            click.echo(f"rebuild of {path} failed: {e}", err=True)

    for changes in watch_changes(*paths):
        for _, changed in changes:
            on_change(changed)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        click.echo(f"acmectl: unexpected error: {e}", err=True)
        sys.exit(1)
