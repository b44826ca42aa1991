"""The `intake` command. Each command is thin: the work lives in the package that owns it.

Errors an operator must act on end as one line on stderr and exit 1; usage errors exit 2.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from outbox.transports import TransportUnavailable
from pipeline.errors import IntakeError
from pipeline.settings import Settings, load_settings
from store.repository import Store, StoreError

DEFAULT_CONFIG = "config/intake.toml"


def _fail_cleanly(func):
    """Turn the errors an operator can fix into one line and exit code 1, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (IntakeError, StoreError, TransportUnavailable) as exc:
            click.echo(f"intake: error: {exc}", err=True)
            sys.exit(1)
    return wrapper


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"Configuration file (default: $INTAKE_CONFIG, else {DEFAULT_CONFIG}).")
@click.option("-v", "--verbose", is_flag=True, help="Log each message as it is processed.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """intake: reads the campaign mailbox, records every form and answers every county."""
    _setup_logging(verbose)
    ctx.obj = config_path or os.environ.get("INTAKE_CONFIG") or DEFAULT_CONFIG


def _settings(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj)


def _store(settings: Settings, write: bool = False) -> Store:
    store = Store(settings.store.path, settings.store.files)
    if write:
        store.lock()
    return store


@main.command()
@click.option("--once", is_flag=True, default=True,
              help="One pass, then exit (the default; `intake run` is the long-running worker).")
@click.pass_context
@_fail_cleanly
def poll(ctx: click.Context, once: bool) -> None:
    """Fetch new mail, parse, validate, store and reply, once.

    Example: intake --config config/intake.toml poll --once
    """
    from pipeline.poll import run_pass

    settings = _settings(ctx)
    store = _store(settings, write=True)
    try:
        report = run_pass(settings, store)
    finally:
        store.close()
    click.echo(report.summary())
    if report.delivery.error:
        click.echo(f"intake: warning: replies not sent yet: {report.delivery.error}", err=True)
        if report.delivery.fatal:
            sys.exit(1)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True,
              help="Export format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@click.pass_context
@_fail_cleanly
def export(ctx: click.Context, fmt: str, output: str | None) -> None:
    """Export the roster: every candidate and every message read.

    Example: intake export --format json -o roster.json
    """
    from pipeline.roster import export_roster

    settings = _settings(ctx)
    store = _store(settings)
    try:
        text = json.dumps(export_roster(store), ensure_ascii=False, indent=2)
    finally:
        store.close()
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        os.chmod(output, 0o600)
    else:
        click.echo(text)


@main.command()
@click.pass_context
@_fail_cleanly
def status(ctx: click.Context) -> None:
    """Show a per-county table: candidates by status, places used, last submission.

    Example: intake status
    """
    settings = _settings(ctx)
    store = _store(settings)
    try:
        print_county_table(store, settings)
    finally:
        store.close()


def print_county_table(store, settings: Settings, console: Console | None = None) -> None:
    from pipeline.roster import county_rows

    table = Table(title="信息技术能手推荐 · 各县市区报送情况")
    for header in ("县市区", "已受理", "需补正", "已撤回", "名额", "报告", "最近报送"):
        table.add_column(header)
    for row in county_rows(store, settings):
        table.add_row(row.county, str(row.accepted), str(row.needs_correction), str(row.withdrawn),
                      f"{row.places_used}/{row.places_max}", str(row.reports),
                      row.last_submission[:16].replace("T", " ") or "—")
    (console or Console()).print(table)


@main.command()
@click.argument("name")
@click.option("--county", required=True, help="The candidate's county, as configured.")
@click.option("--status", "review_status", required=True,
              type=click.Choice(["pooled", "shortlisted", "selected", "not-selected"]),
              help="The review stage's result: pooled (初选入库), shortlisted (入围), selected, not-selected.")
@click.option("--note", default="", help="A remark kept with the mark.")
@click.pass_context
@_fail_cleanly
def mark(ctx: click.Context, name: str, county: str, review_status: str, note: str) -> None:
    """Record a review mark (初选/评审) for a candidate; no email is sent.

    Example: intake mark 张三 --county 荷塘区 --status shortlisted --note "初选通过"
    """
    from pipeline.poll import utc_now
    from pipeline.review import mark_candidate

    settings = _settings(ctx)
    store = _store(settings, write=True)
    try:
        mark_candidate(store, county, name, review_status, note, utc_now())
    finally:
        store.close()
    click.echo(f"{county} {name}: {review_status}")


@main.command()
@click.option("--dir", "demo_dir", default="var/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where to build the demo mailbox.")
@click.pass_context
@_fail_cleanly
def demo(ctx: click.Context, demo_dir: str) -> None:
    """Run the whole job on a fresh Maildir seeded with sample county emails.

    Example: intake demo
    """
    from pipeline.demo import run_demo

    run_demo(_settings(ctx), Path(demo_dir), Console())


if __name__ == "__main__":
    main()
