"""The fraud model registry: every model ``usefirst risk train`` made, and the one in service.

A registered model keeps its ONNX bytes and their SHA-256 in its row, so any process can load it
whichever machine trained it. Nothing new is served until an operator promotes a version
(``usefirst risk model promote``). A promotion is a version of the ``fraud_model``
configuration (``kit.config_versions``) whose content is the model version: promotions form an
append-only history, and every process picks up the newest within ``config_refresh_seconds``, as
it does the rules. Until the first promotion the shipped artefact is served; promoting the shipped
artefact's version goes back to it.

A model is refused at promotion unless it takes exactly the engine's features and its bytes load
and match their checksum. The same check runs when a process loads the promoted model; should it
fail there (bytes changed in the database since, or an engine upgrade changed the features), the
process serves the shipped artefact and logs why, rather than failing every checkout.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from usefirst.kit import config_versions
from usefirst.kit.errors import NotFound, ValidationFailed
from usefirst.kit.models import ConfigVersion
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.models import FraudModelVersion

if TYPE_CHECKING:
    from usefirst.risk.fraud_model import ModelMetadata, OnnxFraudModel

MODEL_CONFIG_KIND = "fraud_model"

log = logging.getLogger(__name__)


class FraudScorer(Protocol):
    """What checkout needs of a fraud model: its version and a fraud probability for features
    (the ONNX model served, or any stand-in a test or the simulator passes)."""

    version: str

    def score(self, features: Mapping[str, float]) -> float: ...


class ModelVersionUnknown(NotFound):
    code = "model_version_unknown"
    default_message = "No fraud model of that version is registered."


class ModelNotServable(ValidationFailed):
    code = "model_not_servable"
    default_message = "This fraud model cannot be served; nothing was changed."


def sha256_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def register_model(
    session: Session, *, metadata: ModelMetadata, directory: Path, now: datetime
) -> FraudModelVersion:
    """Record a model exported to ``directory``, with its bytes (idempotent per version)."""
    # Imported here: onnxruntime is heavy, and only training and promotion need it.
    from usefirst.risk.fraud_model import MODEL_FILE

    payload = (directory / MODEL_FILE).read_bytes()
    row = session.get(FraudModelVersion, metadata.version)
    if row is None:
        row = FraudModelVersion(
            version=metadata.version,
            artefact_path=str(directory.resolve()),
            feature_names=list(metadata.feature_names),
            training_summary=metadata.training_summary,
            auc=metadata.auc,
            trained_at=now,
        )
        session.add(row)
    if row.onnx_model is None:
        # A version names its trees and features: the same version is the same model, so a row
        # registered before the bytes were kept may take them now.
        row.onnx_model = payload
        row.onnx_sha256 = sha256_of(payload)
        row.artefact_metadata = metadata.as_dict()
    session.flush()
    return row


def feature_problem(feature_names: tuple[str, ...]) -> str | None:
    """Why a model's features are not the engine's, or None when they are the same set."""
    if len(set(feature_names)) != len(feature_names):
        return "the model names a feature twice"
    missing = [name for name in FEATURE_NAMES if name not in feature_names]
    unknown = [name for name in feature_names if name not in FEATURE_NAMES]
    if not missing and not unknown:
        return None
    parts = []
    if missing:
        parts.append(f"lacks the engine's {', '.join(missing)}")
    if unknown:
        parts.append(f"takes {', '.join(unknown)}, which the engine does not compute")
    return "the model " + " and ".join(parts)


def load_registered(row: FraudModelVersion) -> OnnxFraudModel:
    """The row's model, ready to serve; ModelNotServable says why not."""
    # Imported here: onnxruntime is heavy, and only a process serving a promoted model needs it.
    from usefirst.risk.fraud_model import ModelArtefactError, ModelMetadata, load_model_bytes

    if row.onnx_model is None or row.artefact_metadata is None:
        raise ModelNotServable(
            f"{row.version} was registered before models were kept in the database: "
            "train it again to register its artefact"
        )
    if sha256_of(row.onnx_model) != row.onnx_sha256:
        raise ModelNotServable(f"{row.version}: the stored artefact does not match its checksum")
    try:
        metadata = ModelMetadata.from_dict(row.artefact_metadata)
    except ModelArtefactError as error:
        raise ModelNotServable(f"{row.version}: {error}") from None
    if metadata.version != row.version:
        raise ModelNotServable(f"{row.version}: the stored metadata names {metadata.version}")
    problem = feature_problem(metadata.feature_names)
    if problem is not None:
        raise ModelNotServable(f"{row.version}: {problem}")
    try:
        return load_model_bytes(row.onnx_model, metadata)
    except ModelArtefactError as error:
        raise ModelNotServable(f"{row.version}: {error}") from None


def promoted(session: Session) -> ConfigVersion | None:
    """The newest promotion (uncached: for operators, not for the hot path)."""
    return config_versions.newest(session, kind=MODEL_CONFIG_KIND)


def _version_in_force(promotion: ConfigVersion | None, shipped: FraudScorer | None) -> str | None:
    if promotion is not None:
        return promotion.content
    return shipped.version if shipped is not None else None


def promote(
    session: Session,
    *,
    version: str,
    shipped: FraudScorer | None,
    note: str | None,
    created_by: str,
    now: datetime,
) -> ConfigVersion | None:
    """Put ``version`` in force everywhere (None: it already is). Refused, changing nothing, for
    an unknown version or a model that cannot be served."""
    if shipped is None or version != shipped.version:
        row = session.get(FraudModelVersion, version)
        if row is None:
            raise ModelVersionUnknown(f"no fraud model {version!r} is registered")
        label = f"AUC {row.auc:.4f}, {row.training_summary.get('rows', '?')} labelled rows"
        load_registered(row)
    else:
        label = "the shipped artefact"
    current = promoted(session)
    if _version_in_force(current, shipped) == version:
        return None
    return config_versions.publish(
        session,
        kind=MODEL_CONFIG_KIND,
        content=version,
        label=label,
        based_on=current.number if current is not None else 0,
        note=note,
        created_by=created_by,
        now=now,
    )


def load_promoted(
    session: Session, version: str, *, shipped: Callable[[], FraudScorer | None]
) -> FraudScorer | None:
    """The promoted model for the per-process cache; the shipped one if it cannot be served."""
    shipped_model = shipped()
    if shipped_model is not None and version == shipped_model.version:
        return shipped_model
    row = session.get(FraudModelVersion, version)
    try:
        if row is None:
            raise ModelVersionUnknown(f"no fraud model {version!r} is registered")
        return load_registered(row)
    except (ModelVersionUnknown, ModelNotServable) as error:
        log.error("promoted fraud model not served, the shipped one is: %s", error.message)
        return shipped_model


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    trained_at: datetime | None
    auc: float
    training_summary: dict[str, object]
    is_servable: bool
    is_shipped: bool
    is_in_force: bool


def registered_models(session: Session, *, shipped: FraudScorer | None) -> list[RegisteredModel]:
    """Every registered model, newest first, then the shipped one; which one is in force."""
    in_force = _version_in_force(promoted(session), shipped)
    rows = session.execute(
        select(
            FraudModelVersion.version,
            FraudModelVersion.trained_at,
            FraudModelVersion.auc,
            FraudModelVersion.training_summary,
            FraudModelVersion.onnx_sha256,
        ).order_by(FraudModelVersion.trained_at.desc(), FraudModelVersion.version)
    )
    models = [
        RegisteredModel(
            version=version,
            trained_at=trained_at,
            auc=auc,
            training_summary=dict(summary),
            is_servable=sha256 is not None,
            is_shipped=False,
            is_in_force=version == in_force,
        )
        for version, trained_at, auc, summary, sha256 in rows
    ]
    if shipped is not None and all(model.version != shipped.version for model in models):
        metadata = getattr(shipped, "metadata", None)
        trained_at = getattr(metadata, "trained_at", None)
        models.append(
            RegisteredModel(
                version=shipped.version,
                trained_at=datetime.fromisoformat(trained_at) if trained_at else None,
                auc=float(getattr(metadata, "auc", float("nan"))),
                training_summary=dict(getattr(metadata, "training_summary", {})),
                is_servable=True,
                is_shipped=True,
                is_in_force=shipped.version == in_force,
            )
        )
    return models
