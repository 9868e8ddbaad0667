"""``usefirst risk train | graph | evaluate``: fraud model, link graph, evaluation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from usefirst.risk.evaluate import EvaluationReport, SimulationSize

console = Console()


def _money(amount_minor: int) -> str:
    return f"¥{amount_minor / 100:,.0f}"


def _size(shoppers: int, merchants: int, days: int, scale: float) -> SimulationSize:
    from usefirst.risk.evaluate import SimulationSize
    from usefirst.sim.fraud import FraudScenario

    return SimulationSize(
        shoppers=shoppers, merchants=merchants, days=days, scenario=FraudScenario().scaled(scale)
    )


def train(
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Train on a simulated marketplace's ground truth (how the shipped model is "
            "made) instead of this database's case labels and charge-offs.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Simulation and training seed.")] = 11,
    shoppers: Annotated[int, typer.Option(min=10, max=100_000)] = 150,
    merchants: Annotated[int, typer.Option(min=1, max=1000)] = 6,
    days: Annotated[int, typer.Option(min=10, max=3650)] = 36,
    scale: Annotated[float, typer.Option(help="Fraud scenario size factor.")] = 0.8,
    output: Annotated[Path, typer.Option(help="Artefact directory to write.")] = Path(
        "fraud-model"
    ),
) -> None:
    """Train the LightGBM fraud model on labelled history and export it to ONNX."""
    import tempfile

    from usefirst.kit.settings import get_settings
    from usefirst.risk.evaluate import sandbox_runtime, simulate_history
    from usefirst.risk.model_training import (
        NotEnoughLabels,
        export_model,
        labelled_rows,
        production_labels,
        register_model,
        train_model,
    )
    from usefirst.runtime import Runtime

    now = datetime.now(UTC)
    extra: dict[str, object] = {}
    try:
        if simulate:
            size = _size(shoppers, merchants, days, scale)
            with tempfile.TemporaryDirectory(prefix="usefirst-train-") as scratch:
                runtime = sandbox_runtime(Path(scratch))
                truth = simulate_history(runtime, seed=seed, size=size, console=console)
                with runtime.work(read_only=True) as work:
                    labels = {
                        order_id: int(truth.is_fraud_order(order_id))
                        for order_id in _decided_order_ids(work.session)
                    }
                    rows = labelled_rows(
                        work.session, labels=labels, label_source="simulator_ground_truth"
                    )
                runtime.database.dispose()
            extra = {
                "simulation": {
                    "seed": seed,
                    "shoppers": shoppers,
                    "merchants": merchants,
                    "days": days,
                    "scale": scale,
                }
            }
            trained = train_model(rows, seed=seed)
            metadata = export_model(trained, output, now=now, extra_summary=extra)
        else:
            runtime = Runtime(get_settings())
            with runtime.work(read_only=True) as work:
                rows = labelled_rows(
                    work.session,
                    labels=production_labels(work.session),
                    label_source="case_labels_and_charge_offs",
                )
            trained = train_model(rows, seed=seed)
            metadata = export_model(trained, output, now=now)
            with runtime.work() as work:
                register_model(work.session, metadata=metadata, directory=output, now=work.now)
    except NotEnoughLabels as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None
    table = Table(title=f"fraud model {metadata.version}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    summary = metadata.training_summary
    for name in ("rows", "fraud_rows", "legitimate_rows", "holdout_rows", "label_source"):
        table.add_row(name, str(summary[name]))
    table.add_row("AUC (held-out)", f"{metadata.auc:.4f}")
    table.add_row("artefact", str(output))
    console.print(table)


def _decided_order_ids(session: object) -> list[str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from usefirst.risk.models import RiskDecision

    assert isinstance(session, Session)
    return list(session.scalars(select(RiskDecision.order_id)))


def graph() -> None:
    """Run link analysis now: score groups of linked shoppers, open or update ring cases."""
    from usefirst.kit.settings import get_settings
    from usefirst.risk.graph import run_graph
    from usefirst.runtime import Runtime

    runtime = Runtime(get_settings())
    with runtime.work() as work:
        summary = run_graph(work.session, cipher=runtime.cipher, now=work.now)
    console.print(
        f"graph run {summary.run_id}: {summary.shoppers} linked shoppers, "
        f"{summary.link_values} shared identifiers, {summary.components} components, "
        f"{summary.rings_scored} groups scored, {summary.rings_flagged} rings "
        f"({summary.cases_opened} case(s) opened, {summary.cases_updated} updated, "
        f"{summary.settlement_holds} settlement hold(s))"
    )
    if summary.rings:
        table = Table(title="rings")
        for column in ("ring", "case", "score", "merchant", "members", "at risk"):
            table.add_column(column)
        for ring in summary.rings:
            table.add_row(
                ring.ring_id or "",
                ring.case_id or "",
                f"{ring.score:.2f}",
                ring.merchant_id or "-",
                str(len(ring.members)),
                _money(ring.amount_at_risk_minor),
            )
        console.print(table)


def evaluate(
    seed: Annotated[
        int, typer.Option(help="Simulation seed (use one the model was not trained on).")
    ] = 2027,
    shoppers: Annotated[int, typer.Option(min=10, max=100_000)] = 150,
    merchants: Annotated[int, typer.Option(min=1, max=1000)] = 6,
    days: Annotated[int, typer.Option(min=10, max=3650)] = 36,
    scale: Annotated[float, typer.Option(help="Fraud scenario size factor.")] = 0.8,
    json_output: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.")
    ] = None,
    keep: Annotated[
        Path | None, typer.Option(help="Keep the simulated database in this directory.")
    ] = None,
    truth_file: Annotated[
        Path | None, typer.Option(help="Write the simulator's ground truth here.")
    ] = None,
) -> None:
    """Simulate a marketplace with fraud through the engine; compare with baselines."""
    from usefirst.risk.evaluate import evaluate as run_evaluation

    report = run_evaluation(
        seed=seed,
        size=_size(shoppers, merchants, days, scale),
        directory=keep,
        console=console,
        truth_file=truth_file,
    )
    print_report(report)
    if json_output is not None:
        json_output.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")


def print_report(report: EvaluationReport) -> None:
    console.print(
        f"seed {report.seed}: {report.orders} orders at risk decisions, review budget "
        f"{report.review_budget}, model {report.model_version or 'none'}"
    )
    table = Table(title="cash-out stopped before merchant settlement")
    table.add_column("measure")
    for system in report.systems:
        table.add_column(system.name, justify="right")

    def row(name: str, values: list[str]) -> None:
        table.add_row(name, *values)

    systems = report.systems
    row("fraud orders stopped", [f"{s.fraud_stopped} / {s.fraud_orders}" for s in systems])
    row("cash-out amount stopped", [f"{s.cash_out_stopped_share:.1%}" for s in systems])
    row(
        "  stopped / total",
        [f"{_money(s.cash_out_stopped_minor)} / {_money(s.cash_out_minor)}" for s in systems],
    )
    row("orders held or declined", [str(s.flagged_orders) for s in systems])
    row("precision at budget", [f"{s.precision:.1%}" for s in systems])
    row("recall at budget", [f"{s.recall:.1%}" for s in systems])
    row(
        "honest orders reviewed/declined",
        [f"{s.honest_flagged_share:.2%} ({s.honest_flagged} / {s.honest_orders})" for s in systems],
    )
    row("honest orders stepped up", [str(s.honest_stepped_up) for s in systems])
    row("loss prevented", [_money(s.loss_prevented_minor) for s in systems])
    row("loss (settled, unpaid)", [_money(s.loss_minor) for s in systems])
    console.print(table)
    typologies = Table(title="engine by typology")
    for column in ("typology", "orders", "stopped", "amount", "stopped amount"):
        typologies.add_column(column, justify="right" if column != "typology" else "left")
    for typology, counts in report.typologies.items():
        typologies.add_row(
            typology,
            str(counts["orders"]),
            str(counts["stopped"]),
            _money(counts["amount_minor"]),
            _money(counts["stopped_minor"]),
        )
    console.print(typologies)


def register(risk_app: typer.Typer) -> None:
    risk_app.command("train")(train)
    risk_app.command("graph")(graph)
    risk_app.command("evaluate")(evaluate)
