"""The fraud model as served: an ONNX export of gradient-boosted trees run by onnxruntime.

One ``InferenceSession`` per process (loaded once, single-threaded so checkouts don't fight over
cores); a checkout scores one row as a float32 vector in the artefact's feature order — no
training library, no per-row wrapper. An artefact is a directory with ``model.onnx`` and
``metadata.json`` (version, feature order, training data summary, AUC); the default one ships in
``usefirst/risk/artefacts/`` (made by ``usefirst risk train --simulate``). Models trained on a
database's labels are kept in that database and served once promoted (``model_registry``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

DEFAULT_ARTEFACT_DIR = Path(__file__).parent / "artefacts"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"


class ModelArtefactError(ValueError):
    """An artefact directory that cannot be served (missing file, bad metadata, wrong shape)."""


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    feature_names: tuple[str, ...]
    trained_at: str
    auc: float
    training_summary: dict[str, Any]
    parameters: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "feature_names": list(self.feature_names),
            "trained_at": self.trained_at,
            "auc": self.auc,
            "training_summary": self.training_summary,
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelMetadata:
        try:
            return cls(
                version=str(raw["version"]),
                feature_names=tuple(str(name) for name in raw["feature_names"]),
                trained_at=str(raw["trained_at"]),
                auc=float(raw["auc"]),
                training_summary=dict(raw["training_summary"]),
                parameters=dict(raw.get("parameters", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelArtefactError(f"metadata.json is not a model's metadata: {error}") from None


class OnnxFraudModel:
    """Probability that a checkout is fraud, from its features."""

    def __init__(self, *, session: onnxruntime.InferenceSession, metadata: ModelMetadata) -> None:
        self.metadata = metadata
        self.version = metadata.version
        self.feature_names = metadata.feature_names
        self._session = session
        self._input_name = session.get_inputs()[0].name
        outputs = [output.name for output in session.get_outputs()]
        if "probabilities" not in outputs:
            raise ModelArtefactError(f"the ONNX graph has no probabilities output: {outputs}")
        self._outputs = ["probabilities"]
        width = session.get_inputs()[0].shape[1]
        if isinstance(width, int) and width != len(self.feature_names):
            raise ModelArtefactError(
                f"the ONNX graph takes {width} features, the metadata names "
                f"{len(self.feature_names)}"
            )

    def vector(self, features: Mapping[str, float]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Features in the model's order; a feature the caller lacks counts as 0."""
        return np.array(
            [[float(features.get(name, 0.0)) for name in self.feature_names]], dtype=np.float32
        )

    def score(self, features: Mapping[str, float]) -> float:
        probabilities = self._session.run(self._outputs, {self._input_name: self.vector(features)})[
            0
        ]
        return float(probabilities[0][1])

    def score_matrix(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Scores of many rows at once (columns in ``feature_names`` order)."""
        matrix = np.ascontiguousarray(rows, dtype=np.float32)
        probabilities = self._session.run(self._outputs, {self._input_name: matrix})[0]
        return np.asarray(probabilities, dtype=np.float64)[:, 1]


def _session_options() -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    # One row per call: threads only add hand-off latency, and web workers already run in
    # parallel.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The converter declares the unused label output one row long; that warning is noise.
    options.log_severity_level = 3
    return options


def load_model(directory: Path) -> OnnxFraudModel:
    """Load an artefact directory (``model.onnx`` + ``metadata.json``)."""
    model_path, metadata_path = directory / MODEL_FILE, directory / METADATA_FILE
    if not model_path.is_file() or not metadata_path.is_file():
        raise ModelArtefactError(f"{directory} holds no {MODEL_FILE} and {METADATA_FILE}")
    try:
        raw = json.loads(metadata_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelArtefactError(f"{metadata_path} is not JSON: {error}") from None
    return load_model_bytes(model_path.read_bytes(), ModelMetadata.from_dict(raw))


def load_model_bytes(payload: bytes, metadata: ModelMetadata) -> OnnxFraudModel:
    """Load an ONNX graph held in memory (a registered model's bytes from the database)."""
    try:
        session = onnxruntime.InferenceSession(
            payload, sess_options=_session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own classes for any unreadable graph
        raise ModelArtefactError(f"the ONNX graph cannot be loaded: {error}") from None
    return OnnxFraudModel(session=session, metadata=metadata)


@functools.cache
def _load_default(directory: str) -> OnnxFraudModel | None:
    path = Path(directory)
    if not (path / MODEL_FILE).is_file():
        return None
    return load_model(path)


def load_default_model() -> OnnxFraudModel | None:
    """The shipped model (one per process), or None when no artefact is shipped."""
    return _load_default(str(DEFAULT_ARTEFACT_DIR))
