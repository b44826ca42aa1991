"""The `intake` command. Each command is thin: the work lives in the package that owns it.

Errors an operator must act on end as one line on stderr and exit 1; usage errors exit 2.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import pwd
import signal
import sys
import threading
from pathlib import Path

# Start-up: the imports make some 30,000 objects the collector tracks, all living as long as
# the process; it would walk them again and again (and once more at exit). It waits until they
# are made, then leaves them out of its walks (gc.freeze); garbage made later is collected as usual.
_collecting = gc.isenabled()
gc.disable()
import click
from rich.console import Console
from rich.table import Table

from outbox.errors import TransportUnavailable
from pipeline.errors import IntakeError
from pipeline.settings import Settings, load_settings
from store.repository import Store, StoreError, store_exists

gc.freeze()
if _collecting:
    gc.enable()

DEFAULT_CONFIG = "config/intake.toml"


def _fail_cleanly(func):
    """Turn the errors an operator can fix into one line and exit code 1, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (IntakeError, StoreError, TransportUnavailable) as exc:
            _fail(str(exc))
        except OSError as exc:      # a path the user gave or owns: name it, say what is wrong
            _fail(os_error_line(exc))
    return wrapper


def _fail(line: str) -> None:
    click.echo(f"intake: error: {line}", err=True)
    sys.exit(1)


def os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    line = f"{where}{exc.strerror or exc}"
    if isinstance(exc, PermissionError):
        line += f" (intake runs as {pwd.getpwuid(os.geteuid()).pw_name})"
    return line


def _report(outcome) -> None:
    """Print a command's outcome; exit 1 on its error."""
    for line in outcome.out:
        click.echo(line)
    for line in outcome.warnings:
        click.echo(f"intake: warning: {line}", err=True)
    if outcome.by_worker is not None:
        click.echo(f"intake: done by the running worker (pid {outcome.by_worker})", err=True)
    if outcome.error:
        _fail(outcome.error)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intake", message="%(prog)s %(version)s")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"Configuration file (default: $INTAKE_CONFIG, else {DEFAULT_CONFIG}).")
@click.option("-v", "--verbose", is_flag=True, help="Log each message as it is processed.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """intake: reads the campaign mailbox, records every form and answers every county."""
    _setup_logging(verbose)
    # Everything intake writes (store, attachments, replies, exports, converter scratch) holds
    # candidates' personal data: readable by the service user only, directories included.
    os.umask(0o077)
    ctx.obj = config_path or os.environ.get("INTAKE_CONFIG") or DEFAULT_CONFIG


def _settings(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj)


def _store(settings: Settings, write: bool = False, role: str = "intake") -> Store:
    if not write and not store_exists(settings.store.path):
        click.echo(f"intake: warning: no store at {settings.store.path} yet: nothing has been "
                   f"received with {settings.source}", err=True)
    store = Store(settings.store.path, settings.store.files)
    if write:
        try:
            store.lock(role)
        except BaseException:
            store.close()
            raise
    return store


def _perform(ctx: click.Context, command: str, /, **args) -> None:
    """A command that writes: here, or by the running worker while `intake run` holds the store."""
    from pipeline.commands import perform
    from pipeline.poll import utc_now

    _report(perform(_settings(ctx), command, args, utc_now))


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
    store = _store(settings, write=True, role="poll")
    try:
        report = run_pass(settings, store)
    finally:
        store.close()
    click.echo(report.summary())
    _delivery_problem(report.delivery, "replies not sent")


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx", "docx", "files"]), default="json",
              show_default=True,
              help="json (everything), csv / xlsx (the roster for Excel and WPS), "
                   "docx (accepted candidates' forms for the review panel), "
                   "files (the originals as received, 县市区/姓名/, and a one-page roster; -o DIR or -o FILE.zip).")
@click.option("-o", "--output", type=click.Path(writable=True),
              help="Write to this file instead of standard output (required for xlsx, docx and files).")
@click.pass_context
@_fail_cleanly
def export(ctx: click.Context, fmt: str, output: str | None) -> None:
    """Export the roster: every candidate and every message read.

    Example: intake export --format xlsx -o 推荐名单.xlsx
    """
    from pipeline.exports import BINARY_FORMATS, export_bytes

    if fmt in BINARY_FORMATS and not output:
        raise click.UsageError(f"--format {fmt} writes a binary file: give it one with -o FILE")
    if fmt == "files" and not output:
        raise click.UsageError("--format files writes a folder: give it one with -o DIR (or -o FILE.zip)")
    if output and fmt != "files" and Path(output).is_dir():
        raise click.UsageError(f"-o {output} is a directory; --format {fmt} writes one file")
    if output and fmt == "files" and not output.lower().endswith(".zip") and Path(output).is_file():
        raise click.UsageError(f"-o {output} is a file: give a directory or a name ending in .zip")
    settings = _settings(ctx)
    store = _store(settings)
    try:
        if fmt == "files":
            from pipeline.digest import local_today
            from pipeline.originals import export_files
            from pipeline.poll import utc_now

            count = export_files(store, settings, Path(output), local_today(settings, utc_now()))
            click.echo(f"wrote {count} file(s) to {output}")
            return
        data = export_bytes(fmt, store, settings)
    finally:
        store.close()
    if output:
        try:
            Path(output).write_bytes(data)
            os.chmod(output, 0o600)
        except OSError as exc:
            raise IntakeError(f"cannot write {output}: {exc.strerror}") from None
    else:
        stdout = click.get_binary_stream("stdout")
        stdout.write(data)
        stdout.flush()


@main.command()
@click.pass_context
@_fail_cleanly
def status(ctx: click.Context) -> None:
    """Show a per-county table with the digest's figures, waiting counties and open issues.

    Example: intake status
    """
    settings = _settings(ctx)
    store = _store(settings)
    try:
        print_county_table(store, settings)
    finally:
        store.close()


def print_county_table(store, settings: Settings, console: Console | None = None) -> None:
    """The digest's figures as of now (pipeline.digest.build_figures), as a terminal table."""
    import datetime as dt

    from pipeline.digest import status_figures

    now = dt.datetime.now(dt.timezone.utc)   # not pipeline.poll's: that imports every parser
    figures = status_figures(store, settings, now)
    table = Table(title="信息技术能手推荐 · 各县市区报送情况")
    for header in ("县市区", "已受理", "需补正", "已撤回", "名额", "盖章件", "报告", "最近报送"):
        table.add_column(header)
    for row in figures.rows:
        table.add_row(row.county, str(row.accepted), str(row.needs_correction), str(row.withdrawn),
                      f"{row.places_used}/{row.places_max}", f"{row.sealed}/{row.places_used}", str(row.reports),
                      row.last_submission[:16].replace("T", " ") or "—")
    console = console or Console()
    console.print(table)
    for line in status_lines(figures):
        console.print(line)


def status_lines(figures) -> list[str]:
    from outbox.wording import REVIEW_WORDS, deadline_line

    t = figures.totals
    waiting = "、".join(w.county for w in figures.waiting) or "无"
    deadline = deadline_line(figures.days_left, figures.deadline)
    lines = [
        f"待人工处理的来信：{len(figures.questions)} 封" + ("（intake questions 查看）" if figures.questions else ""),
        f"合计：推荐人选 {t.candidates} 名（已受理 {t.accepted}，需补正 {t.needs_correction}），"
        f"名额 {t.places_used}/{t.places_total}，报告 {t.reports} 份",
        f"尚未报送：{waiting}。" + (f"[red]{deadline}[/red]" if figures.urgent else deadline),
        f"未登记的发件地址：{len(figures.unknown_senders)} 个"
        + "".join(f"\n  {u.address}（{u.emails} 封）" for u in figures.unknown_senders)
        + f"；未能送达的邮件：{len(figures.failed_replies)} 封",
    ]
    for u in figures.unsealed:
        lines.append(f"未见盖章件：{u.county} {u.name}（{u.missing}）")
    for problem in figures.problems:
        lines.append(f"待补正：{problem.county} {problem.name}")
        lines += [f"  {i}. {sentence}" for i, sentence in enumerate(problem.sentences, 1)]
    for r in figures.reviews:
        lines.append(f"评审：{r.county} {r.name} {REVIEW_WORDS.get(r.status, r.status)}"
                     + (f"（{r.note}）" if r.note else ""))
    return lines


@main.command(name="outbox")
@click.option("--retry", is_flag=True, help="Re-queue the failed replies; the next pass sends them.")
@click.pass_context
@_fail_cleanly
def outbox_command(ctx: click.Context, retry: bool) -> None:
    """List the replies waiting, failed, undeliverable or sent in the last 24 hours.

    Example: intake outbox --retry
    """
    from outbox.listing import outbox_rows, outbox_table
    from pipeline.poll import utc_now

    if retry:
        _perform(ctx, "outbox-retry")
    settings = _settings(ctx)
    store = _store(settings)
    try:
        rows = outbox_rows(store, utc_now())
    finally:
        store.close()
    Console().print(outbox_table(rows, settings.campaign.timezone))


@main.command()
@click.option("--date", "date_text", metavar="YYYY-MM-DD",
              help="The digest's date (default: today in the campaign's time zone).")
@click.option("--dry-run", is_flag=True, help="Print the text digest; send and record nothing.")
@click.option("--force", is_flag=True, help="Send again even if this date's digest was sent.")
@click.pass_context
@_fail_cleanly
def digest(ctx: click.Context, date_text: str | None, dry_run: bool, force: bool) -> None:
    """Build the daily digest and send it to [digest] to, once per date.

    Example: intake digest --date 2022-07-20 --dry-run
    """
    import datetime as dt

    from outbox.digest import render_digest
    from pipeline.digest import build_figures, local_today
    from pipeline.poll import utc_now

    now = utc_now()
    try:
        date = dt.date.fromisoformat(date_text) if date_text else None
    except ValueError:
        raise click.BadParameter(f"{date_text!r} is not a date like 2022-07-20", param_hint="--date")
    if not dry_run:
        _perform(ctx, "digest", date=date and date.isoformat(), force=force)
        return
    settings = _settings(ctx)
    store = _store(settings)
    try:
        date = date or local_today(settings, now)
        click.echo(render_digest(build_figures(store, settings, date, now))[0], nl=False)
    finally:
        store.close()


def _delivery_problem(delivery, what: str) -> None:
    """One line on stderr when mail did not leave: an error (exit 1) when the operator must act,
    as for a refused login; a warning when waiting is enough (an unreachable server)."""
    if not delivery.error:
        return
    if delivery.fatal:
        click.echo(f"intake: error: {what}: {delivery.error}", err=True)
        sys.exit(1)
    click.echo(f"intake: warning: {what} yet: {delivery.error}", err=True)


@main.command()
@click.argument("name")
@click.option("--county", required=True, help="The candidate's county, as configured.")
@click.option("--status", "review_status", required=True,
              help="The review stage's result: 入库 (pooled, 储备库), 入围 (shortlisted, 备选名单), "
                   "推荐 (selected, 建议人选), 未入选 (not-selected).")
@click.option("--note", default="", help="A remark kept with the mark.")
@click.pass_context
@_fail_cleanly
def mark(ctx: click.Context, name: str, county: str, review_status: str, note: str) -> None:
    """Record a review mark (初选/评审) for a candidate; no email is sent.

    Example: intake mark 张三 --county 荷塘区 --status 入围 --note "初选通过"
    """
    from pipeline.review import review_status as review_code

    try:
        code = review_code(review_status)
    except IntakeError as exc:
        raise click.BadParameter(str(exc), param_hint="--status")
    _perform(ctx, "mark", name=name, county=county, status=code, note=note)


@main.command()
@click.option("--date", "date_text", metavar="YYYY-MM-DD",
              help="The reminder day (default: today in the campaign's time zone).")
@click.option("--dry-run", is_flag=True, help="Show who would be reminded of what; send and record nothing.")
@click.pass_context
@_fail_cleanly
def remind(ctx: click.Context, date_text: str | None, dry_run: bool) -> None:
    """Send the day's reminders ([reminders] days_before) to counties with incomplete materials.

    Example: intake remind --date 2022-07-28 --dry-run
    """
    import datetime as dt

    from pipeline.digest import local_today
    from pipeline.poll import utc_now
    from pipeline.reminders import send_reminders

    try:
        day = dt.date.fromisoformat(date_text) if date_text else None
    except ValueError:
        raise click.BadParameter(f"{date_text!r} is not a date like 2022-07-28", param_hint="--date")
    settings = _settings(ctx)
    if not settings.reminders.days_before:
        raise IntakeError("reminders are off: set [reminders] days_before, e.g. [7, 3, 1]")
    now = utc_now()
    day = day or local_today(settings, now)
    store = _store(settings, write=not dry_run)
    try:
        run = send_reminders(settings, store, day, now, dry_run=dry_run)
    finally:
        store.close()
    if not run.planned:
        click.echo(f"no reminders on {day}: not a reminder day, or every county is complete")
    for plan in run.planned:
        state = "already reminded today" if plan.already else ("would remind" if dry_run else "reminded")
        click.echo(f"{plan.county}: {state} ({', '.join(plan.to)})")
        for line in plan.lines:
            click.echo(f"  - {line}")
    if run.delivery.error:
        click.echo(f"intake: warning: not sent yet: {run.delivery.error}", err=True)
        if run.delivery.fatal:
            sys.exit(1)


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Also those already marked answered.")
@click.pass_context
@_fail_cleanly
def questions(ctx: click.Context, show_all: bool) -> None:
    """List county emails that need a person (questions, requests), oldest first.

    Example: intake questions
    """
    from pipeline.questions import open_questions
    from pipeline.rules import NEEDS_PERSON

    settings = _settings(ctx)
    store = _store(settings)
    try:
        submissions = store.submissions.all()
    finally:
        store.close()
    rows = ([s for s in sorted(submissions, key=lambda s: s["received_at"]) if s["status"] == NEEDS_PERSON]
            if show_all else open_questions(submissions))
    if not rows:
        click.echo("no questions waiting for a person" if not show_all else "no questions")
        return
    # Plain lines, not a table: the text is long, and the Message-ID must stay whole to be pasted.
    for n, s in enumerate(rows, start=1):
        done = f"  已处理 {s['answered_at'][:16].replace('T', ' ')}" if s.get("answered_at") else ""
        click.echo(f"{n}. {s.get('county') or ''}  {s['received_at'][:16].replace('T', ' ')}  {s.get('from', '')}{done}")
        click.echo(f"   主题：{s.get('subject') or '（无主题）'}")
        for line in (s.get("words") or "").splitlines():
            click.echo(f"   {line}")
        click.echo(f"   intake answered \"{s['message_id']}\"")


@main.command()
@click.argument("message_id")
@click.option("--note", default="", help="How it was answered (kept with the mark).")
@click.pass_context
@_fail_cleanly
def answered(ctx: click.Context, message_id: str, note: str) -> None:
    """Mark a county's question as answered; it leaves `intake questions` and the digest.

    Example: intake answered "<20220720103000.1234@example.cn>" --note "电话答复"
    """
    _perform(ctx, "answered", message_id=message_id, note=note)


@main.command()
@click.pass_context
@_fail_cleanly
def run(ctx: click.Context) -> None:
    """The worker: take mail as it arrives, reply, retry, send the digest; stop on SIGTERM.

    Example: INTAKE_IMAP_PASSWORD=... INTAKE_SMTP_PASSWORD=... intake --config config/intake.163.toml run
    """
    # First, before the slow steps (the worker's imports, opening and replaying the store): a
    # SIGTERM from systemd in the first second stops the service cleanly, exit 0.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from pipeline.worker import run_worker

    logging.getLogger().setLevel(logging.INFO)  # a service logs what it does, one line a message
    settings = _settings(ctx)
    store = _store(settings, write=True, role="run")
    try:
        run_worker(settings, store, stop)
    finally:
        store.close()


@main.command()
@click.pass_context
@_fail_cleanly
def failed(ctx: click.Context) -> None:
    """List messages whose processing failed: retrying, or set aside after three attempts.

    Example: intake failed
    """
    settings = _settings(ctx)
    store = _store(settings)
    try:
        rows = store.failures.with_status("retrying", "failed")
    finally:
        store.close()
    if not rows:
        click.echo("no failed messages")
        return
    table = Table(title="Messages that failed")
    for header in ("where", "Message-ID", "status", "attempts", "last try", "error"):
        table.add_column(header)
    for f in sorted(rows, key=lambda f: f["first_at"]):
        table.add_row(f["ref"], f["message_id"] or "—", f["status"], str(f["attempts"]),
                      f["last_at"][:16].replace("T", " "), f["error"].splitlines()[0])
    Console().print(table)


@main.command()
@click.argument("message")
@click.pass_context
@_fail_cleanly
def reprocess(ctx: click.Context, message: str) -> None:
    """Run a failed message again (after a fix), by its Message-ID or its `where` from `intake failed`.

    Example: intake reprocess "<20220720103000.1234@example.cn>"
    """
    _perform(ctx, "reprocess", message=message)


@main.command()
@click.argument("message_id")
@click.pass_context
@_fail_cleanly
def release(ctx: click.Context, message_id: str) -> None:
    """Process a message held because its sender's authentication failed, once confirmed.

    Example: intake release "<20220720103000.1234@example.cn>"
    """
    _perform(ctx, "release", message_id=message_id)


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
