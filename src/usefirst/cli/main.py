"""``usefirst`` command line: serve, worker, migrate, sweep, ledger audit, admin, simulate."""

from __future__ import annotations

import logging
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from usefirst.cli import credit as credit_cli
from usefirst.cli import privacy as privacy_cli
from usefirst.cli import risk_models as risk_model_cli
from usefirst.cli.config import config_app
from usefirst.kit.settings import Settings, get_settings

if TYPE_CHECKING:
    from usefirst.runtime import Runtime

app = typer.Typer(help="usefirst — Buy Now, Pay Later engine.", no_args_is_help=True)
admin_app = typer.Typer(help="Credentials for the platform and operators.", no_args_is_help=True)
ledger_app = typer.Typer(help="Ledger checks and reports.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
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
console = Console()


def _settings(sandbox: bool | None = None) -> Settings:
    settings = get_settings()
    if sandbox is not None and sandbox != settings.sandbox:
        settings = settings.model_copy(update={"sandbox": sandbox})
    return settings


def _runtime(sandbox: bool | None = None) -> Runtime:
    from usefirst.runtime import Runtime

    return Runtime(_settings(sandbox))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from usefirst.kit.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    console.print(f"[green]migrated[/green] {_safe_url(settings.database_url)}")


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

    from usefirst.api.app import create_app

    runtime = _runtime(sandbox or None)
    console.print(
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
            log_level="info",
        )
        return
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="info")


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Drain once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
) -> None:
    """Deliver the outbox (webhooks) and run the daily sweep when a business day begins."""
    logging.basicConfig(level=logging.INFO)
    runtime = _runtime()
    while True:
        for summary in runtime.run_due_sweeps():
            console.print(f"swept {summary.as_dict()}")
        result = runtime.deliver_outbox()
        if result.delivered or result.retried or result.failed:
            console.print(
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
) -> None:
    """Run the daily sweep for a business date (idempotent: a second run changes nothing)."""
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    if on is None:
        summaries = runtime.run_due_sweeps()
    else:
        try:
            business_on = date.fromisoformat(on)
        except ValueError:
            raise typer.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
        try:
            summaries = [runtime.sweep(business_on)]
        except UsefirstError as error:
            console.print(f"[red]{error.message}[/red]")
            raise typer.Exit(code=2) from None
    for summary in summaries:
        console.print(summary.as_dict())


@app.command()
def settle(
    on: Annotated[str, typer.Option("--date", help="Business date YYYY-MM-DD to pay out for.")],
    merchant: Annotated[
        str | None, typer.Option("--merchant", help="Only this merchant (default: all).")
    ] = None,
) -> None:
    """Pay merchants what is due on a business date (idempotent per merchant and date)."""
    from usefirst.flows.settlement_run import settle as settle_merchants
    from usefirst.kit.errors import UsefirstError

    try:
        business_on = date.fromisoformat(on)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
    runtime = _runtime()
    try:
        with runtime.work() as work:
            if business_on > work.today:
                console.print(f"[red]{business_on} is in the future (today is {work.today}).[/red]")
                raise typer.Exit(code=2)
            summary = settle_merchants(
                work.session,
                business_on=business_on,
                settings=runtime.settings,
                now=work.now,
                merchant_ids=None if merchant is None else [merchant],
            )
    except UsefirstError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(code=2) from None
    console.print(summary.counts())
    for settlement_id in summary.settlement_ids:
        console.print(f"paid {settlement_id}")


@ledger_app.command("audit")
def ledger_audit() -> None:
    """Prove the ledger: entries balance, debits = credits, receivables = statements."""
    from usefirst.ledger.service import audit

    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = audit(work.session)
    table = Table(title="ledger audit")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_row("journal entries", str(report.entries))
    table.add_row("total debits (minor)", str(report.debits_minor))
    table.add_row("total credits (minor)", str(report.credits_minor))
    table.add_row("shoppers reconciled", str(report.shoppers_checked))
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]problem:[/red] {problem}")
    if report.is_balanced:
        console.print("[green]ledger balanced: yes[/green]")
    else:
        console.print("[red]ledger balanced: no[/red]")
        raise typer.Exit(code=1)


@bureau_app.command("report")
def bureau_report(
    period: Annotated[str, typer.Option(help="The month to report, YYYY-MM.")],
    file_format: Annotated[str, typer.Option("--format", help="metro2 or jsonl.")] = "metro2",
    output: Annotated[str | None, typer.Option(help="Also write the file here.")] = None,
) -> None:
    """Write a credit-bureau file for a month (also kept for GET /v1/bureau/files)."""
    from pathlib import Path

    from usefirst.collections.service import bureau_file_text, create_bureau_file
    from usefirst.kit.errors import UsefirstError

    # Checked before the file is made: a stored file whose copy could not be written is confusing.
    if output and not Path(output).parent.is_dir():
        raise typer.BadParameter(f"no directory {Path(output).parent}", param_hint="--output")
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
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(code=2) from None
    if output:
        Path(output).write_text(content, encoding="ascii" if file_format == "metro2" else "utf-8")
    console.print(f"bureau file {file_id}: {period}, {file_format}, {records} account(s)")


@report_app.command("portfolio")
def portfolio_report(
    chart: Annotated[str, typer.Option(help="Chart file (.png or .svg).")] = "portfolio.png",
) -> None:
    """Delinquency by bucket, month-end roll rates and vintage curves, with a chart."""
    from pathlib import Path

    from usefirst.collections.portfolio import BUCKET_ORDER, write_chart
    from usefirst.collections.service import portfolio_report as build
    from usefirst.kit.money import Money

    chart_path = Path(chart)
    if chart_path.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter("the chart must be a .png or .svg file", param_hint="--chart")
    if not chart_path.parent.is_dir():
        raise typer.BadParameter(f"no directory {chart_path.parent}", param_hint="--chart")
    runtime = _runtime()
    with runtime.work(read_only=True) as work:
        report = build(work.session, as_of=work.today)
    buckets = Table(title=f"delinquency on {report.as_of}")
    buckets.add_column("bucket")
    buckets.add_column("accounts", justify="right")
    buckets.add_column("outstanding", justify="right")
    for bucket in BUCKET_ORDER:
        amount = Money(report.bucket_amounts_minor[bucket], runtime.settings.currency)
        buckets.add_row(bucket, str(report.bucket_counts[bucket]), amount.format())
    console.print(buckets)
    rolls = Table(title="roll rates between month ends")
    rolls.add_column("from")
    rolls.add_column("to")
    rolls.add_column("share", justify="right")
    for (source, target), share in report.roll_rates.items():
        rolls.add_row(source, target, f"{share:.1%}")
    console.print(rolls)
    vintages = Table(title="vintages: share of principal ever 30+ days past due")
    vintages.add_column("delivered")
    vintages.add_column("by month on book")
    for vintage, curve in report.vintages.items():
        vintages.add_row(vintage, "  ".join(f"{share:.1%}" for share in curve))
    console.print(vintages)
    path = write_chart(report, chart_path)
    console.print(f"chart written to {path}")


@admin_app.command("create-platform-key")
def create_platform_key(label: Annotated[str, typer.Option()] = "platform") -> None:
    """Create a platform API key; the key is printed alone on the last line, shown once."""
    from usefirst.identity.service import create_api_key

    runtime = _runtime()
    with runtime.work() as work:
        secret = create_api_key(work.session, kind="platform", now=work.now, label=label)
    console.print("Platform API key (store it now; it is not shown again):", soft_wrap=True)
    print(secret)


@admin_app.command("create-operator")
def create_operator(
    email: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="admin, risk_analyst, collector, compliance, support")],
) -> None:
    """Create an operator; its API token is printed alone on the last line."""
    from usefirst.identity.service import create_operator as create
    from usefirst.kit.errors import UsefirstError

    runtime = _runtime()
    try:
        with runtime.work() as work:
            operator, token = create(work.session, email=email, role=role, now=work.now)
    except UsefirstError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(code=2) from None
    console.print(f"Operator {operator.id} ({operator.role}). API token (shown once):")
    print(token)


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
    """Give an operator (or a merchant's staff member) a console sign-in: password + TOTP."""
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
                    console.print("[red]No operator with this email: create it first.[/red]")
                    raise typer.Exit(code=2)
                auth.create_account(
                    work.session,
                    email=email,
                    password=password,
                    operator_id=operator.id,
                    now=work.now,
                )
    except UsefirstError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(code=2) from None
    console.print(
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
) -> None:
    """Run a simulated marketplace history through the real services (sandbox clock)."""
    from usefirst.lab.sim.marketplace import simulate as run_simulation

    runtime = _runtime(sandbox=True)
    summary = run_simulation(
        runtime, shoppers=shoppers, merchants=merchants, days=days, seed=seed, console=console
    )
    table = Table(title=f"simulation (seed {seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary.rows():
        table.add_row(name, value)
    console.print(table)
    if not summary.ledger_balanced:
        raise typer.Exit(code=1)


@risk_app.command("backtest")
def risk_backtest(
    rules: Annotated[Path, typer.Option("--rules", help="The rule file (TOML) to try.")],
) -> None:
    """Replay stored checkout decisions through a rule file and show what would change."""
    from usefirst.risk.decision import backtest
    from usefirst.risk.rules import RuleFileError, load_rule_file

    try:
        rule_set = load_rule_file(rules)
    except RuleFileError as error:
        console.print(f"[red]{error}[/red]", highlight=False)
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
    console.print(table)
    console.print(f"changed: {report.changed} of {report.decisions}")


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    app()
