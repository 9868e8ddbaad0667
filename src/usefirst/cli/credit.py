"""``usefirst credit …``: train a scorecard, and produce training data from the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from usefirst.cli.output import fail, iso_date, stderr, stdout

credit_app = typer.Typer(
    help="Credit scorecards: training data and training.", no_args_is_help=True
)


@credit_app.command("train")
def train(
    data: Annotated[
        list[Path], typer.Option(help="Training CSV, one row per applicant (repeatable).")
    ],
    target: Annotated[str, typer.Option(help="Column that is 1 for a bad outcome, else 0.")],
    output_dir: Annotated[
        Path, typer.Option(help="Directory for VERSION.json and its reports.")
    ] = Path("scorecards"),
    artefact: Annotated[
        Path | None,
        typer.Option(help="Write the artefact to this exact path instead (reports beside it)."),
    ] = None,
    categorical: Annotated[
        list[str] | None, typer.Option(help="Treat this column as categorical (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave this column out (repeatable).")
    ] = None,
    special_code: Annotated[
        list[float] | None,
        typer.Option(help="A numeric value meaning 'not applicable' (own bin; repeatable)."),
    ] = None,
    test_size: Annotated[float, typer.Option(min=0.05, max=0.5)] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the stratified train/test split.")] = 7,
    min_information_value: Annotated[
        float, typer.Option(help="Drop features whose information value is lower.")
    ] = 0.02,
) -> None:
    """Train a scorecard (monotonic WOE bins, logistic regression, integer points) and write the
    versioned points table and a report (AUC, KS, Gini, PSI train vs test).

    Exit codes:
    0 trained;
    2 data that cannot be used (a missing file or column, a protected
    attribute): nothing is written."""
    from usefirst.credit.application import REASON_TEXTS
    from usefirst.kit.clock import system_now
    from usefirst.lab.scorecard_training import (
        TrainingDataInvalid,
        TrainingOptions,
        train_from_csv,
    )

    options = TrainingOptions(
        target=target,
        categorical=tuple(categorical or ()),
        exclude=tuple(exclude or ()),
        special_codes=tuple(special_code or ()),
        reason_texts=REASON_TEXTS,
        min_information_value=min_information_value,
        test_size=test_size,
        seed=seed,
    )
    try:
        result = train_from_csv(
            data=data,
            options=options,
            output_dir=output_dir,
            created_at=system_now().replace(microsecond=0),
            artefact_path=artefact,
        )
    except (TrainingDataInvalid, FileNotFoundError) as error:
        fail(str(error), code=2)
    out = stdout()
    out.print(result.report.as_text(), highlight=False)
    out.print(f"artefact: {result.artefact_path}")
    out.print(f"report:   {result.report_json_path}, {result.report_text_path}")


@credit_app.command("validate")
def validate(
    artefact: Annotated[Path, typer.Option(help="The scorecard artefact (points table JSON).")],
    data: Annotated[
        list[Path], typer.Option(help="A history it was not trained on, CSV (repeatable).")
    ],
    target: Annotated[str, typer.Option(help="Column that is 1 for a bad outcome, else 0.")],
    reference: Annotated[
        list[Path] | None,
        typer.Option(help="The training history, for the PSI of each band (repeatable)."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option(help="Also write the report as JSON to this file.")
    ] = None,
) -> None:
    """Score a history with a scorecard: AUC, KS and Gini, and per score band its share, its
    observed default rate and (with --reference) its PSI term against the training history.

    Exit codes:
    0 validated;
    2 an artefact or data that cannot be read: nothing is written."""
    import json

    from usefirst.credit.policy import DEFAULT_SCORE_BANDS
    from usefirst.credit.scorecard import ScorecardArtefactInvalid, load_scorecard
    from usefirst.lab.scorecard_training import (
        TrainingDataInvalid,
        TrainingOptions,
        read_training_data,
        rows_of,
        validate_scorecard,
    )

    options = TrainingOptions(target=target)
    try:
        scorecard = load_scorecard(artefact)
        X, y = read_training_data(data, options)
        reference_scores = None
        if reference:
            X_reference, _ = read_training_data(reference, options)
            reference_scores = [scorecard.score(row) for row in rows_of(X_reference)]
    except (TrainingDataInvalid, ScorecardArtefactInvalid, FileNotFoundError) as error:
        fail(str(error), code=2)
    report = validate_scorecard(
        scorecard,
        X,
        y,
        bands=[(band.band, band.min_score) for band in DEFAULT_SCORE_BANDS],
        reference_scores=reference_scores,
    )
    stdout().print(report.as_text(), highlight=False)
    if json_file is not None:
        json_file.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")


@credit_app.command("simulate-history")
def simulate_history(
    output: Annotated[Path, typer.Option(help="CSV to write (application facts + defaulted).")],
    shoppers: Annotated[int, typer.Option(min=1, max=100_000)] = 1_500,
    days: Annotated[int, typer.Option(min=31, max=3650)] = 75,
    seed: Annotated[int, typer.Option()] = 11,
    merchants: Annotated[int, typer.Option(min=1, max=1000)] = 10,
) -> None:
    """Simulate a marketplace history (every applicant on the cold-start limit, so the data is
    not filtered by an earlier scorecard) and export who defaulted, for ``credit train``;
    progress goes to standard error.

    Exit codes:
    0 exported and the simulated ledger balances;
    1 it does not balance."""
    from usefirst.kit.db import Database
    from usefirst.kit.settings import get_settings
    from usefirst.lab.sim.applicants import export_applications
    from usefirst.lab.sim.marketplace import simulate
    from usefirst.runtime import Runtime

    settings = get_settings().model_copy(update={"sandbox": True, "credit_policy": "cold_start"})
    # One process drives every transaction: keep SQLite connections rather than reopen them.
    database = Database(settings.database_url, keep_sqlite_connections=True)
    runtime = Runtime(settings, database=database)
    summary = simulate(
        runtime, shoppers=shoppers, merchants=merchants, days=days, seed=seed, console=stderr()
    )
    exported = export_applications(runtime, applicants=summary.applicants, path=output)
    stdout().print(
        f"{exported.exported} applicants exported to {output} ({exported.defaulted} defaulted); "
        f"left out: {exported.immature} too recent to judge, "
        f"{exported.without_orders} without orders"
    )
    if not summary.ledger_balanced:
        raise typer.Exit(code=1)


@credit_app.command("draw-applicants")
def draw_applicants(
    output: Annotated[Path, typer.Option(help="CSV to write (application facts + defaulted).")],
    count: Annotated[int, typer.Option(min=100, max=1_000_000)] = 10_000,
    seed: Annotated[int, typer.Option()] = 5,
    on: Annotated[str, typer.Option("--date", help="Date ages are taken on, YYYY-MM-DD.")] = (
        "2026-11-23"
    ),
) -> None:
    """Draw simulated applicants labelled by the repayment behaviour the simulator gives them
    (no marketplace run: fast, but the label is the simulator's, not the engine's record).

    Exit codes:
    0 written;
    2 a malformed --date."""
    from usefirst.lab.sim.applicants import write_drawn_applicants

    today = iso_date(on, option="--date")
    written = write_drawn_applicants(path=output, count=count, seed=seed, today=today)
    stdout().print(
        f"{written.exported} applicants written to {output} ({written.defaulted} never pay)"
    )
