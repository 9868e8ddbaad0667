"""Labels → `risk train` → `risk model promote` → served at checkout, in every process: the
decision records the promoted version and exactly that ONNX model's score of its features. A
promotion that cannot be served (unknown version, features that are not the engine's, bytes that
do not match their checksum) is refused with exit 2 and changes nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from sqlalchemy import func, select, update
from typer.testing import Result

from tests.cli.test_cli import run
from tests.conftest import TEST_BLIND_INDEX_KEY, TEST_KEYS, make_runtime
from tests.factories import checkout_in_work, enrol_in_work, merchant_in_work
from usefirst.kit.models import ConfigVersion
from usefirst.kit.settings import get_settings
from usefirst.lab.fraud_model_training import LabelledRows, export_model, train_model
from usefirst.risk import decision as risk_decision
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.model_registry import MODEL_CONFIG_KIND, register_model
from usefirst.risk.models import FraudModelVersion, RiskDecision, RiskLabel
from usefirst.runtime import Runtime

SHIPPED = risk_decision.default_model()
LABELLED_EACH = 12
TRAINED_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def cli_environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reaches the test database with the test keys, as another process would."""
    monkeypatch.setenv("USEFIRST_DATABASE_URL", database_url)
    monkeypatch.setenv("USEFIRST_SANDBOX", "true")
    monkeypatch.setenv(
        "USEFIRST_ENCRYPTION_KEYS",
        ",".join(
            f"{key_id}:{base64.urlsafe_b64encode(key).decode()}"
            for key_id, key in TEST_KEYS.items()
        ),
    )
    monkeypatch.setenv("USEFIRST_ACTIVE_KEY_ID", "k1")
    monkeypatch.setenv(
        "USEFIRST_BLIND_INDEX_KEY", base64.urlsafe_b64encode(TEST_BLIND_INDEX_KEY).decode()
    )
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def in_force_line(result: Result) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("in force: ")]
    return line.removeprefix("in force: ").strip()


def table_row(result: Result, version: str) -> list[str]:
    (line,) = [
        line for line in result.stdout.splitlines() if version in line and "in force" not in line
    ]
    return line.split()


def checkout(runtime: Runtime, *, merchant_id: str, category: str, amount_minor: int) -> str:
    with runtime.work() as work:
        shopper, _ = enrol_in_work(runtime, work, external_id=f"model-{category}-{amount_minor}")
        return checkout_in_work(
            runtime,
            work,
            shopper_id=shopper.id,
            merchant_id=merchant_id,
            amount_minor=amount_minor,
            category=category,
            shipping_address=f"北京市朝阳区建国路 {amount_minor % 97} 号",
        ).id


def labelled_history(runtime: Runtime) -> str:
    """Analysts' labels on recorded checkouts: phones bought dear are fraud, groceries are not."""
    with runtime.work() as work:
        merchant_id = merchant_in_work(runtime, work).id
    labels: dict[str, str] = {}
    for index in range(LABELLED_EACH):
        fraud = checkout(
            runtime, merchant_id=merchant_id, category="phones", amount_minor=70_000 + 1_500 * index
        )
        honest = checkout(
            runtime, merchant_id=merchant_id, category="groceries", amount_minor=4_000 + 700 * index
        )
        labels[fraud], labels[honest] = "fraud", "legitimate"
    with runtime.work() as work:
        for row in work.session.scalars(select(RiskDecision)):
            work.session.add(
                RiskLabel(
                    shopper_id=row.shopper_id,
                    order_id=row.order_id,
                    label=labels[row.order_id],
                    case_id="case_test",
                    decided_by="op_analyst",
                    decided_at=work.now,
                )
            )
    return merchant_id


def onnx_score(row: FraudModelVersion, features: dict[str, float]) -> float:
    """The stored ONNX graph run directly, apart from the engine's serving code."""
    assert row.onnx_model is not None
    session = onnxruntime.InferenceSession(row.onnx_model, providers=["CPUExecutionProvider"])
    names = row.artefact_metadata["feature_names"]
    vector = np.array([[float(features.get(name, 0.0)) for name in names]], dtype=np.float32)
    probabilities = session.run(["probabilities"], {session.get_inputs()[0].name: vector})[0]
    return float(probabilities[0][1])


def served_version(runtime: Runtime) -> str | None:
    with runtime.work(read_only=True) as work:
        model = risk_decision.model_of(work.session, runtime.settings)
        return model.version if model is not None else None


def promotions(runtime: Runtime) -> int:
    with runtime.work(read_only=True) as work:
        return int(
            work.session.scalar(
                select(func.count())
                .select_from(ConfigVersion)
                .where(ConfigVersion.kind == MODEL_CONFIG_KIND)
            )
            or 0
        )


def test_a_promoted_model_is_served_at_checkout_in_every_process(
    database_url: str, cli_environment: None, tmp_path: Path
) -> None:
    assert SHIPPED is not None
    # Looks for a newer promotion at every checkout, so "the next checkout" is exact here.
    runtime = make_runtime(database_url, config_refresh_seconds=0)
    lazy = make_runtime(database_url, config_refresh_seconds=300)
    try:
        merchant_id = labelled_history(runtime)
        assert served_version(lazy) == SHIPPED.version

        trained = run("risk", "train", "--output", str(tmp_path / "model"))
        assert trained.exit_code == 0, trained.output
        with runtime.work(read_only=True) as work:
            (version,) = work.session.scalars(select(FraudModelVersion.version))
        assert f"registered {version}" in trained.stdout
        listed = run("risk", "model", "list")
        assert listed.exit_code == 0, listed.output
        assert in_force_line(listed) == SHIPPED.version
        assert served_version(runtime) == SHIPPED.version  # registered is not served

        promoted = run("risk", "model", "promote", version, "--note", "first retrain")
        assert promoted.exit_code == 0, promoted.output
        assert f"promoted {version}" in promoted.stdout

        order_id = checkout(
            runtime, merchant_id=merchant_id, category="phones", amount_minor=81_000
        )
        with runtime.work(read_only=True) as work:
            decision = work.session.scalars(
                select(RiskDecision).where(RiskDecision.order_id == order_id)
            ).one()
            row = work.session.get(FraudModelVersion, version)
            assert row is not None
            features = dict(decision.features)
            expected = onnx_score(row, features)
            recorded = (decision.model_version, decision.model_score)
        assert recorded == (version, expected)
        assert SHIPPED.score(features) != expected  # not the shipped model's score

        listed = run("risk", "model", "list")
        assert in_force_line(listed) == version
        assert table_row(listed, version)[0] == "*"
        assert table_row(listed, version)[-2] == f"{LABELLED_EACH}/{LABELLED_EACH}"
        assert table_row(listed, version)[-1].startswith("case_")  # the label source
        assert table_row(listed, SHIPPED.version)[0] == SHIPPED.version
        assert table_row(listed, SHIPPED.version)[-1] == "shipped"

        # Another process, with its own cache and default refresh, serves it from the start.
        other = make_runtime(database_url)
        try:
            assert served_version(other) == version
        finally:
            other.database.dispose()
        # One that looked before the promotion keeps its model until its refresh is due.
        assert served_version(lazy) == SHIPPED.version

        again = run("risk", "model", "promote", version)
        assert again.exit_code == 0, again.output
        assert "already in force" in again.stdout
        assert promotions(runtime) == 1

        # Back to the shipped artefact by promoting its version.
        back = run("risk", "model", "promote", SHIPPED.version)
        assert back.exit_code == 0, back.output
        assert served_version(runtime) == SHIPPED.version
        assert promotions(runtime) == 2
    finally:
        runtime.database.dispose()
        lazy.database.dispose()


def registered(
    runtime: Runtime, directory: Path, *, feature_names: tuple[str, ...] = FEATURE_NAMES
) -> str:
    """A model trained on crafted rows, registered as ``risk train`` does; its version."""
    matrix = np.random.default_rng(len(feature_names)).gamma(2.0, 2.0, (120, len(feature_names)))
    rows = LabelledRows(
        order_ids=[f"ord_{index}" for index in range(120)],
        matrix=matrix,
        labels=(matrix[:, 0] > np.median(matrix[:, 0])).astype(np.int64),
        feature_names=feature_names,
        label_source="crafted",
    )
    metadata = export_model(train_model(rows, seed=4), directory, now=TRAINED_AT)
    with runtime.work() as work:
        register_model(work.session, metadata=metadata, directory=directory, now=work.now)
    return metadata.version


def test_promotion_of_an_unservable_model_is_refused_and_changes_nothing(
    runtime: Runtime, cli_environment: None, tmp_path: Path
) -> None:
    assert SHIPPED is not None
    # Trained before the engine computed link_known_fraud.
    subset = registered(
        runtime,
        tmp_path / "subset",
        feature_names=tuple(name for name in FEATURE_NAMES if name != "link_known_fraud"),
    )
    tampered = registered(runtime, tmp_path / "tampered")
    with runtime.work() as work:
        work.session.execute(
            update(FraudModelVersion)
            .where(FraudModelVersion.version == tampered)
            .values(onnx_model=(tmp_path / "subset" / "model.onnx").read_bytes())
        )

    unknown = run("risk", "model", "promote", "fraud-20261201-0000000000")
    mismatched = run("risk", "model", "promote", subset)
    corrupted = run("risk", "model", "promote", tampered)

    assert unknown.exit_code == mismatched.exit_code == corrupted.exit_code == 2
    assert "no fraud model 'fraud-20261201-0000000000' is registered" in unknown.stderr
    assert "lacks the engine's link_known_fraud" in mismatched.stderr
    assert "does not match its checksum" in corrupted.stderr
    assert "nothing was changed" in mismatched.stderr
    assert promotions(runtime) == 0
    assert served_version(runtime) == SHIPPED.version
    assert in_force_line(run("risk", "model", "list")) == SHIPPED.version


def test_a_promoted_model_whose_bytes_change_afterwards_is_not_served(
    runtime: Runtime, cli_environment: None, tmp_path: Path
) -> None:
    assert SHIPPED is not None
    version = registered(runtime, tmp_path / "model")
    assert run("risk", "model", "promote", version).exit_code == 0
    fresh = make_runtime(runtime.settings.database_url)
    try:
        assert served_version(fresh) == version
    finally:
        fresh.database.dispose()

    with runtime.work() as work:
        work.session.execute(
            update(FraudModelVersion)
            .where(FraudModelVersion.version == version)
            .values(onnx_model=b"not an onnx graph")
        )
    fresh = make_runtime(runtime.settings.database_url)
    try:
        assert served_version(fresh) == SHIPPED.version
    finally:
        fresh.database.dispose()
