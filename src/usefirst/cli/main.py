"""``usefirst`` command line: serve, worker, migrate, sweep, ledger audit, admin, simulate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from usefirst.cli import credentials as credentials_cli
from usefirst.cli import credit as credit_cli
from usefirst.cli import privacy as privacy_cli
from usefirst.cli import risk_models as risk_model_cli
from usefirst.cli.config import config_app
from usefirst.cli.output import (
    JsonOption,
    fail,
    iso_date,
    print_json,
    report_file_problems,
    stderr,
    stdout,
)
from usefirst.kit.settings import Settings, get_settings

if TYPE_CHECKING:
    from usefirst.collections.portfolio import PortfolioReport
    from usefirst.ledger.service import AuditReport
    from usefirst.runtime import Runtime

app = typer.Typer(
    help="usefirst — Buy Now, Pay Later engine.",
    epilog="Results go to standard output, errors and progress to standard error; when either is "
    "not a terminal every line is written whole and plain. --json prints one JSON document "
    "instead, with the same exit code: 0 done; 1 a check found problems, or another change "
    "came first (each command's --help says which); 2 bad input or refused: nothing changed.",
    no_args_is_help=True,
)
admin_app = typer.Typer(help="Credentials for the platform and operators.", no_args_is_help=True)
ledger_app = typer.Typer(help="Ledger checks and reports.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
credentials_cli.register(admin_app)
app.add_typer(ledger_app, name="ledger")
bureau_app = typer.Typer(help="Credit-bureau reporting.", no_args_is_help=True)
report_app = typer.Typer(help="Reports.", no_args_is_help=True)
app.add_typer(bureau_app, name="bureau")
app.add_typer(report_app, name="report")
app.add_typer(credit_cli.credit_app, name="credit")
risk_app = typer.Typer(help="Risk rules, models and evaluation.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")
risk_model_cli.register(risk_app)
app.add_typer(privacy_cli.audit_app, name="audit")
app.add_typer(privacy_cli.keys_app, name="keys")
app.add_typer(config_app, name="config")
db_app = typer.Typer(
    help="The database itself: distribution on a Citus cluster.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def _settings(sandbox: bool | None = None) -> Settings:
    settings = get_settings()
    if sandbox is not None and sandbox != settings.sandbox:
        settings = settings.model_copy(update={"sandbox": sandbox})
    return settings


def _configure_logging(settings: Settings) -> None:
    """Long-running processes (serve, worker) log structured lines to stderr."""
    from usefirst.kit.logs import configure_logging

    configure_logging(log_format=settings.log_format, level=settings.log_level)


def _runtime(sandbox: bool | None = None, *, traced: bool = False) -> Runtime:
    from usefirst.runtime import Runtime

    if not traced:
        return Runtime(_settings(sandbox))
    from usefirst.kit.tracing import TracingUnavailable, tracer_provider_from_environment

    try:
        provider = tracer_provider_from_environment()
    except TracingUnavailable as error:
        fail(str(error), code=2)
    return Runtime(_settings(sandbox), tracer_provider=provider)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from usefirst.kit.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    stdout().print(Text.assemble(("migrated", "green"), f" {_safe_url(settings.database_url)}"))


@db_app.command("distribute")
def db_distribute(as_json: JsonOption = False) -> None:
    """Distribute the migrated schema on a Citus coordinator as usefirst.distribution lays it
    out (tables distributed already are left alone, so a second run changes nothing), then check
    the cluster against the layout. Run after ``usefirst migrate``; a migration that adds a table
    is followed by another run.

    Exit codes:
    0 distributed and checked;
    1 the cluster differs from the layout (each difference is listed);
    2 the database has no citus extension: nothing changed."""
    from sqlalchemy import create_engine

    from usefirst.distribution import cluster_violations, distribute, has_citus
    from usefirst.kit.db import normalize_database_url

    settings = _settings()
    engine = create_engine(normalize_database_url(settings.database_url))
    try:
        if engine.dialect.name != "postgresql":
            fail("usefirst db distribute needs PostgreSQL with the citus extension", code=2)
        with engine.begin() as connection:
            if not has_citus(connection):
                fail(
                    f"no citus extension in {_safe_url(settings.database_url)}: nothing changed",
                    code=2,
                )
            created = distribute(connection)
        with engine.begin() as connection:
            problems = cluster_violations(connection)
    finally:
        engine.dispose()
    if as_json:
        print_json({"distributed": created, "problems": problems})
    else:
        for table in created:
            stdout().print(f"distributed {table}")
        for problem in problems:
            stdout().print(problem, style="red")
        if not problems:
            stdout().print(
                Text.assemble(
                    ("layout checked", "green"), f" ({len(created)} tables distributed now)"
                )
            )
    if problems:
        raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Enable the test clock (never in production).")
    ] = False,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (docs at /docs)."""
    import os

    import uvicorn

    from usefirst.api.app import create_app, freeze_startup_heap

    runtime = _runtime(sandbox or None, traced=True)
    _configure_logging(runtime.settings)
    stdout().print(
        f"usefirst on http://{host}:{port}  (docs: /docs, database: "
        f"{_safe_url(runtime.settings.database_url)}, sandbox: {runtime.settings.sandbox})"
    )
    if workers > 1:
        # Several processes need an import path: each builds its own app from the environment.
        os.environ["USEFIRST_SANDBOX"] = "true" if runtime.settings.sandbox else "false"
        runtime.database.dispose()
        uvicorn.run(
            "usefirst.api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
        )
        return
    app = create_app(runtime)
    freeze_startup_heap()
    # uvicorn's own logging setup would replace ours; the app logs one line per request itself.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Drain once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the worker's job metrics (sweeps, deliveries) for Prometheus on this "
            "port (no token: keep it on a private address)."
        ),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Deliver the outbox (webhooks) and run the daily sweep when a business day begins."""
    runtime = _runtime(traced=True)
    _configure_logging(runtime.settings)
    if metrics_port is not None:
        runtime.job_metrics.serve(host=metrics_host, port=metrics_port)
    out = stdout()
    while True:
        for summary in runtime.run_due_sweeps():
            out.print(f"swept {summary.as_dict()}")
        result = runtime.deliver_outbox()
        if result.delivered or result.retried or result.failed:
            out.print(
                f"outbox: {result.delivered} delivered, {result.retried} to retry, "
                f"{result.failed} failed"
            )
        if once:
            return
        time.sleep(interval)


@app.command()
def sweep(
    on: Annotated[
        str | None, typer.Option("--date", help="Business date YYYY-MM-DD (default: catch up).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the daily sweep for a business date (idempotent: a second run changes nothing).

    Exit codes:
    0 swept (or swept before);
    2 a malformed date or one after today: nothing is swept."""
    from usefirst.kit.errors import UsefirstError

    business_on = None if on is None else iso_date(on, option="--date")
    runtime = _runtime()
    if business_on is None:
        summaries = runtime.run_due_sweeps()
    else:
        try:
            summaries = [runtime.sweep(business_on)]
        except UsefirstError as error:
            fail(error.message, code=2)
    if as_json:
        print_json({"sweeps": [summary.as_dict() for summary in summaries]})
        return
    out = stdout()
    for summary in summaries:
        out.print(summary.as_dict())


@app.command()
def settle(
    on: Annotated[str, typer.Option("--date", help="Business date YYYY-MM-DD to pay out for.")],
    merchant: Annotated[
        str | None, typer.Option("--merchant", help="Only this merchant (default: all).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Pay merchants what is due on a business date (idempotent per merchant and date).

    Exit codes:
    0 settled (or settled before);
    2 a malformed date, one after today or an unknown merchant: nothing is paid."""
    from usefirst.flows.settlement_run import settle as settle_merchants
    from usefirst.kit.errors import UsefirstError

    business_on = iso_date(on, option="--date")
    runtime = _runtime()
    try:
        with runtime.work() as work:
            if business_on > work.today:
                fail(f"{business_on} is in the future (today is {work.today}).", code=2)
            summary = settle_merchants(
                work.session,
                business_on=business_on,
                settings=runtime.settings,
                now=work.now,
                merchant_ids=None if merchant is None else [merchant],
            )
    except UsefirstError as error:
        fail(error.message, code=2)
    if as_json:
        print_json(
            {
                "business_on": business_on,
                **summary.counts(),
                "settlement_ids": summary.settlement_ids,
            }
        )
        return
    out = stdout()
    out.print(summary.counts())
    for settlement_id in summary.settlement_ids:
        out.print(f"paid {settlement_id}")


@ledger_app.command("audit")
def ledger_audit(as_json: JsonOption = False) -> None:
    """Prove the ledger: entries balance, debits = credits, receivables = statements.

    Exit codes:
    0 balanced;
    1 a problem found (each is listed)."""
    from usefirst.flows.reconcile import audit

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    if as_json:
        print_json(
            {
                "entries": report.entries,
                "debits_minor": report.debits_minor,
                "credits_minor": report.credits_minor,
                "shoppers_checked": report.shoppers_checked,
                "problems": report.problems,
                "balanced": report.is_balanced,
            }
        )
    else:
        _print_ledger_audit(report)
    if not report.is_balanced:
        raise typer.Exit(code=1)


def _print_ledger_audit(report: AuditReport) -> None:
    table = Table(title="ledger audit")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_row("journal entries", str(report.entries))
    table.add_row("total debits (minor)", str(report.debits_minor))
    table.add_row("total credits (minor)", str(report.credits_minor))
    table.add_row("shoppers reconciled", str(report.shoppers_checked))
    out = stdout()
    out.print(table)
    for problem in report.problems:
        out.print(Text.assemble(("problem:", "red"), f" {problem}"))
    if report.is_balanced:
        out.print("ledger balanced: yes", style="green")
    else:
        out.print("ledger balanced: no", style="red")


@bureau_app.command("report")
def bureau_report(
    period: Annotated[str, typer.Option(help="The month to report, YYYY-MM.")],
    file_format: Annotated[str, typer.Option("--format", help="metro2 or jsonl.")] = "metro2",
    output: Annotated[str | None, typer.Option(help="Also write the file here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a credit-bureau file for a month (also kept for GET /v1/bureau/files).

    Exit codes:
    0 written;
    2 a bad period or format, or no directory for --output: no file is made."""
    from usefirst.collections.bureau import bureau_file_text
    from usefirst.flows.bureau_reporting import create_bureau_file
    from usefirst.kit.errors import UsefirstError

    # Checked before the file is made: a stored file whose copy could not be written is confusing.
    if output and not Path(output).parent.is_dir():
        fail(f"--output: no directory {Path(output).parent}", code=2)
    runtime = _runtime()
    try:
        with runtime.work() as work:
            row = create_bureau_file(
                work.session,
                period=period,
                file_format=file_format,
                cipher=runtime.cipher,
                settings=runtime.settings,
                today=work.today,
                now=work.now,
            )
            content = bureau_file_text(row, runtime.cipher)
            file_id, records = row.id, row.records
    except UsefirstError as error:
        fail(error.message, code=2)
    if output:
        Path(output).write_text(content, encoding="ascii" if file_format == "metro2" else "utf-8")
    if as_json:
        print_json(
            {
                "file_id": file_id,
                "period": period,
                "format": file_format,
                "records": records,
                "output": output,
            }
        )
        return
    stdout().print(f"bureau file {file_id}: {period}, {file_format}, {records} account(s)")


@report_app.command("portfolio")
def portfolio_report(
    chart: Annotated[str, typer.Option(help="Chart file (.png or .svg).")] = "portfolio.png",
    as_json: JsonOption = False,
) -> None:
    """Delinquency by bucket, month-end roll rates and vintage curves, with a chart.

    Exit codes:
    0 reported and the chart written;
    2 a chart path that is not .png or .svg, or in no directory."""
    from usefirst.collections.portfolio import BUCKET_ORDER, write_chart
    from usefirst.collections.service import portfolio_report as build

    chart_path = Path(chart)
    if chart_path.suffix.lower() not in (".png", ".svg"):
        fail("--chart: the chart must be a .png or .svg file", code=2)
    if not chart_path.parent.is_dir():
        fail(f"--chart: no directory {chart_path.parent}", code=2)
    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = build(work.session, as_of=work.today)
    currency = runtime.settings.currency
    path = write_chart(report, chart_path)
    if as_json:
        print_json(
            {
                "as_of": report.as_of,
                "currency": currency,
                "buckets": [
                    {
                        "bucket": bucket,
                        "accounts": report.bucket_counts[bucket],
                        "outstanding_minor": report.bucket_amounts_minor[bucket],
                    }
                    for bucket in BUCKET_ORDER
                ],
                "roll_rates": [
                    {"from": source, "to": target, "share": share}
                    for (source, target), share in report.roll_rates.items()
                ],
                "vintages": report.vintages,
                "chart": path,
            }
        )
        return
    _print_portfolio(report, currency)
    stdout().print(f"chart written to {path}")


def _print_portfolio(report: PortfolioReport, currency: str) -> None:
    from usefirst.collections.portfolio import BUCKET_ORDER
    from usefirst.kit.money import Money

    buckets = Table(title=f"delinquency on {report.as_of}")
    buckets.add_column("bucket")
    buckets.add_column("accounts", justify="right")
    buckets.add_column("outstanding", justify="right")
    for bucket in BUCKET_ORDER:
        amount = Money(report.bucket_amounts_minor[bucket], currency)
        buckets.add_row(bucket, str(report.bucket_counts[bucket]), amount.format())
    out = stdout()
    out.print(buckets)
    rolls = Table(title="roll rates between month ends")
    rolls.add_column("from")
    rolls.add_column("to")
    rolls.add_column("share", justify="right")
    for (source, target), share in report.roll_rates.items():
        rolls.add_row(source, target, f"{share:.1%}")
    out.print(rolls)
    vintages = Table(title="vintages: share of principal ever 30+ days past due")
    vintages.add_column("delivered")
    vintages.add_column("by month on book")
    for vintage, curve in report.vintages.items():
        vintages.add_row(vintage, "  ".join(f"{share:.1%}" for share in curve))
    out.print(vintages)


@admin_app.command("create-platform-key")
def create_platform_key(
    label: Annotated[str, typer.Option()] = "platform",
    expires_in_days: Annotated[
        int | None, typer.Option(help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Create a platform API key; the key is printed alone on the last line, shown once.

    Exit codes:
    0 created;
    2 a label or an expiry out of range: nothing is created."""
    from datetime import timedelta

    from usefirst.flows.credentials import issue_platform_key
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        fail("--expires-in-days must be 1 to 3650.", code=2)
    runtime = _runtime()
    now = system_now()
    try:
        with runtime.work() as work:
            issued = issue_platform_key(
                work.session,
                actor=credentials_cli.cli_actor(),
                label=label,
                now=now,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            )
    except UsefirstError as error:
        fail(error.message, code=2)
    stdout().print("Platform API key (store it now; it is not shown again):")
    print(issued.secret)


@admin_app.command("create-operator")
def create_operator(
    email: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="admin, risk_analyst, collector, compliance, support")],
) -> None:
    """Create an operator; its API token is printed alone on the last line.

    Exit codes:
    0 created;
    2 refused (an email in use, an unknown role): nothing is created."""
    from usefirst.flows.credentials import create_operator as create
    from usefirst.kit.clock import system_now
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    try:
        with runtime.work() as work:
            operator, issued = create(
                work.session,
                email=email,
                role=role,
                actor=credentials_cli.cli_actor(),
                now=system_now(),
            )
    except UsefirstError as error:
        fail(error.message, code=2)
    stdout().print(
        f"Operator {operator.id} ({operator.role}). API token (shown once; expires "
        f"{issued.key.expires_at:%Y-%m-%d}):"
    )
    print(issued.secret)


@admin_app.command("console-login")
def console_login(
    email: Annotated[str, typer.Option(help="The operator's email, or a new merchant user's.")],
    merchant_id: Annotated[
        str | None, typer.Option(help="Create a merchant portal user of this merchant.")
    ] = None,
    reset: Annotated[
        bool, typer.Option(help="Set a new password and require TOTP enrolment again.")
    ] = False,
    generate_password: Annotated[
        bool, typer.Option(help="Generate a password and print it alone on the last line.")
    ] = False,
) -> None:
    """Give an operator (or a merchant's staff member) a console sign-in: password + TOTP.

    Exit codes:
    0 ready;
    2 refused (no such operator, merchant or account to reset, a sign-in that
    exists already, a password of the wrong length): nothing changes."""
    import secrets

    from sqlalchemy import select

    from usefirst.console import auth
    from usefirst.identity.models import Operator
    from usefirst.kit.errors import UsefirstError
    from usefirst.merchants.service import get_merchant

    if generate_password:
        password = secrets.token_urlsafe(15)
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    runtime = _runtime()
    try:
        with runtime.work() as work:
            if reset:
                account = auth.set_password(work.session, email=email, password=password)
                account.totp_secret_encrypted = None
                account.totp_enrolled_at = None
            elif merchant_id is not None:
                get_merchant(work.session, merchant_id=merchant_id)
                auth.create_account(
                    work.session,
                    email=email,
                    password=password,
                    merchant_id=merchant_id,
                    now=work.now,
                )
            else:
                operator = work.session.scalar(
                    select(Operator).where(Operator.email == email.strip().lower())
                )
                if operator is None:
                    fail("No operator with this email: create it first.", code=2)
                auth.create_account(
                    work.session,
                    email=email,
                    password=password,
                    operator_id=operator.id,
                    now=work.now,
                )
    except UsefirstError as error:
        fail(error.message, code=2)
    stdout().print(
        f"Console sign-in ready for {email.strip().lower()}; TOTP is set up at first sign-in."
    )
    if generate_password:
        print(password)


@app.command()
def simulate(
    shoppers: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    days: Annotated[int, typer.Option(min=1, max=3650)] = 60,
    seed: Annotated[int, typer.Option()] = 1,
    merchants: Annotated[int, typer.Option(min=1, max=1000)] = 5,
    demo: Annotated[
        bool,
        typer.Option(
            help="Also seed what every console page shows (held orders with merchant warnings, "
            "a ring case, disputes with evidence, complaints, promises to pay, a charge-off) "
            "and leave the clock at a working hour; for a new, empty database."
        ),
    ] = False,
) -> None:
    """Run a simulated marketplace history through the real services (sandbox clock); progress
    goes to standard error.

    Exit codes:
    0 done and the ledger balances;
    1 it does not balance."""
    from usefirst.lab.sim import demo as demo_seed
    from usefirst.lab.sim.marketplace import simulate as run_simulation

    runtime = _runtime(sandbox=True)
    if demo:
        stderr().print("demo: an order left unpaid half a year ago, charged off as time passes…")
        demo_seed.seed_before_history(runtime)
    summary = run_simulation(
        runtime, shoppers=shoppers, merchants=merchants, days=days, seed=seed, console=stderr()
    )
    if demo:
        seeded = demo_seed.seed_after_history(runtime)
        seeded_table = Table(title="demo data")
        seeded_table.add_column("what")
        seeded_table.add_column("rows", justify="right")
        for name, value in seeded.rows():
            seeded_table.add_row(name, value)
        stdout().print(seeded_table)
    table = Table(title=f"simulation (seed {seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary.rows():
        table.add_row(name, value)
    stdout().print(table)
    if not summary.ledger_balanced:
        raise typer.Exit(code=1)


@app.command("sandbox-clock")
def sandbox_clock(
    seconds: Annotated[int, typer.Option(min=0, help="Move forward this many seconds.")] = 0,
    hours: Annotated[int, typer.Option(min=0, help="Move forward this many hours.")] = 0,
    days: Annotated[int, typer.Option(min=0, help="Move forward this many days.")] = 0,
    working_hour: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=23,
            help="Then, outside business hours (before this hour or from 18:00 on, business "
            "time zone), move on to the next day's (or today's) opening at this hour.",
        ),
    ] = None,
) -> None:
    """Show or move the sandbox test clock; the daily sweep and planned reminders run as the
    time passes, as in production. The clock only moves forward.

    Exit codes:
    0 shown or moved;
    2 not a sandbox database."""
    from zoneinfo import ZoneInfo

    from usefirst.kit.clock import TestClock
    from usefirst.lab.sim.demo import move_to_working_hour

    runtime = _runtime()  # never turns sandbox mode on by itself: USEFIRST_SANDBOX=true
    if not isinstance(runtime.clock, TestClock):
        fail("The test clock exists only in sandbox mode (USEFIRST_SANDBOX=true).", code=2)
    if seconds or hours or days:
        runtime.advance_test_clock(days=days, seconds=hours * 3600 + seconds)
    zone = ZoneInfo(runtime.settings.time_zone)
    if working_hour is not None:
        move_to_working_hour(runtime, opening_hour=working_hour)
    with runtime.work(read_only=True) as work:
        now = work.now
    stdout().print(f"sandbox clock: {now.astimezone(zone):%Y-%m-%d %H:%M:%S %Z} ({now:%H:%M} UTC)")


@risk_app.command("backtest")
def risk_backtest(
    rules: Annotated[Path, typer.Option("--rules", help="The rule file (TOML) to try.")],
) -> None:
    """Replay stored checkout decisions through a rule file and show what would change.

    Exit codes:
    0 replayed;
    2 the file cannot be used (each problem on standard error as FILE:LINE:
    message)."""
    from usefirst.risk.decision import backtest
    from usefirst.risk.rules import RuleFileError, load_rule_file

    try:
        rule_set = load_rule_file(rules)
    except RuleFileError as error:
        report_file_problems(rules, error.problems)
        raise typer.Exit(code=2) from None
    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = backtest(work.session, rule_set=rule_set)
    table = Table(title=f"backtest of rules {rule_set.version} on {report.decisions} decisions")
    table.add_column("stored outcome")
    table.add_column("would be")
    table.add_column("orders", justify="right")
    table.add_column("examples")
    for (old, new), count in sorted(report.transitions.items()):
        examples = ", ".join(report.examples.get((old, new), []))
        table.add_row(old, new, str(count), examples)
    out = stdout()
    out.print(table)
    out.print(f"changed: {report.changed} of {report.decisions}")


@risk_app.command("rebuild-counters")
def risk_rebuild_counters() -> None:
    """Build the checkout's risk counters afresh from the orders (migration 0027 does it once;
    run it after restoring orders from elsewhere, or to check that the counters kept up: the
    checkout features read nothing else)."""
    from usefirst.risk import counters

    runtime = _runtime()
    with runtime.work() as work:
        counted = counters.rebuild(work.session, now=work.now)
    stdout().print(f"counters rebuilt from {counted} orders")


@risk_app.command("prune-signals")
def risk_prune_signals(as_json: JsonOption = False) -> None:
    """Delete the online signals' events and hour counts that no checkout reads any more (each
    kind's events older than its window, hours before the 8 days read), as of now. Idempotent
    (a second run deletes nothing). The nightly run does it too, as of its business date's
    start (its step usefirst.risk.signal_upkeep:prune).

    Exit codes:
    0 pruned."""
    from usefirst.risk import signal_upkeep

    runtime = _runtime()
    with runtime.work() as work:
        summary = signal_upkeep.prune(work.session, now=work.now)
    if as_json:
        print_json(
            {
                "events_deleted": summary.events_deleted,
                "hours_deleted": summary.hours_deleted,
                "events_before": {k: v.isoformat() for k, v in summary.events_before.items()},
                "hours_before": summary.hours_before.isoformat(),
            }
        )
        return
    stdout().print(
        f"signal events deleted: {summary.events_deleted}; "
        f"hour counts deleted: {summary.hours_deleted} "
        f"(hours before {summary.hours_before:%Y-%m-%d %H:%M} UTC)"
    )


@risk_app.command("backfill-signals")
def risk_backfill_signals(as_json: JsonOption = False) -> None:
    """Build the online signals' events and hour counts from the orders still in their windows
    (a book that predates migration 0041): events not there are added; each whole clock hour
    before the current one gets the counts of all its orders. Idempotent.

    Exit codes:
    0 backfilled."""
    from usefirst.risk import signal_upkeep

    runtime = _runtime()
    with runtime.work() as work:
        summary = signal_upkeep.backfill(work.session, cipher=runtime.cipher, now=work.now)
    if as_json:
        print_json(
            {
                "orders_read": summary.orders_read,
                "events_added": summary.events_added,
                "hours_written": summary.hours_written,
                "hours_from": summary.hours_from.isoformat(),
                "hours_until": summary.hours_until.isoformat(),
            }
        )
        return
    stdout().print(
        f"orders read: {summary.orders_read}; signal events added: {summary.events_added}; "
        f"hour counts written: {summary.hours_written}"
    )


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    app()


# --- payment rails (issue 18) ----------------------------------------------------------------


@app.command("reconcile")
def reconcile_rail(
    provider: Annotated[
        str, typer.Option("--provider", help="The payment provider, e.g. sandbox.")
    ],
    on: Annotated[str, typer.Option("--date", help="The statement date, YYYY-MM-DD.")],
    as_json: JsonOption = False,
) -> None:
    """Match the provider's statement of a day to the ledger, line by line: matched lines, a
    lost callback posted once, breaks flagged (never reversed silently).

    Exit codes:
    0 every line matched or was posted;
    1 breaks open for that date (each is listed);
    2 bad input or no such provider configured: nothing changed."""
    from usefirst.flows.rail_reconciliation import reconcile_day

    statement_on = iso_date(on, option="--date")
    runtime = _runtime()
    if runtime.payment_provider is None or runtime.payment_provider.name != provider:
        fail(f"--provider: {provider!r} is not the configured payment provider", code=2)
    report = reconcile_day(runtime.rail_work(), statement_on=statement_on)
    if as_json:
        print_json(report.as_dict())
    else:
        out = stdout()
        out.print(
            f"{report.provider} {report.statement_on}: {report.lines} lines, "
            f"{report.matched} matched, {report.posted} posted, {report.reversed} reversed, "
            f"{len(report.breaks)} breaks ({report.new_breaks} new)"
        )
        for item in report.breaks:
            out.print(_break_line(item))
    if report.breaks:
        raise typer.Exit(code=1)


def _break_line(item: dict[str, object]) -> str:
    return (
        f"break {item['id']} {item['kind']} {item['statement_on']} age {item['age_days']}d "
        f"charge {item['charge_id'] or '-'} provider {item['provider_charge_id'] or '-'} "
        f"ours {item['our_amount_minor']} theirs {item['their_amount_minor']}"
    )


@report_app.command("reconciliation-breaks")
def reconciliation_breaks(
    provider: Annotated[str | None, typer.Option("--provider")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every open reconciliation break, oldest first, with its age in days.

    Exit codes:
    0 none open;
    1 breaks open (each is listed)."""
    from usefirst.flows.rail_reconciliation import break_report

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        rows = break_report(work.session, provider=provider, today=work.today)
    if as_json:
        print_json({"data": rows})
    else:
        out = stdout()
        for item in rows:
            out.print(_break_line(item))
        out.print(f"{len(rows)} open breaks")
    if rows:
        raise typer.Exit(code=1)


rails_app = typer.Typer(help="Payment rails: the local sandbox provider.", no_args_is_help=True)
app.add_typer(rails_app, name="rails")


@rails_app.command("sandbox-provider")
def sandbox_provider(
    port: Annotated[int, typer.Option("--port")] = 8765,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    callback_url: Annotated[
        str, typer.Option("--callback-url", help="Where to send the signed callbacks.")
    ] = "http://127.0.0.1:8000/v1/rails/sandbox/callbacks",
    decline_rate: Annotated[float, typer.Option("--decline-rate", min=0, max=1)] = 0.1,
    lose_callback_rate: Annotated[float, typer.Option("--lose-callback-rate", min=0, max=1)] = 0.0,
    min_delay: Annotated[float, typer.Option("--min-delay-seconds", min=0)] = 0.5,
    max_delay: Annotated[float, typer.Option("--max-delay-seconds", min=0)] = 3.0,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
) -> None:
    """Serve the local sandbox payment rail (the default provider of ./dev run). Its secret is
    USEFIRST_SANDBOX_RAIL_SECRET, the same the engine verifies callbacks with."""
    from usefirst.rails.sandbox_server import SandboxConfig, SandboxRailServer

    settings = _settings()
    if not settings.sandbox_rail_secret:
        fail("USEFIRST_SANDBOX_RAIL_SECRET must be set", code=2)
    if max_delay < min_delay:
        fail("--max-delay-seconds: must not be below --min-delay-seconds", code=2)
    server = SandboxRailServer(
        SandboxConfig(
            secret=settings.sandbox_rail_secret,
            callback_url=callback_url,
            decline_rate=decline_rate,
            lose_callback_rate=lose_callback_rate,
            min_delay_seconds=min_delay,
            max_delay_seconds=max_delay,
            seed=seed,
            time_zone=settings.time_zone,
        ),
        host=host,
        port=port,
    )
    stderr().print(f"sandbox rail on {server.url}, callbacks to {callback_url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
