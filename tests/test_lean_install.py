"""What serving needs is the base install: `./dev run` installs only the base dependencies of
uv.lock, so nothing it runs (migrate, the demo simulation, admin, serve, worker) may import a
package that only an extra brings (training, tracing, test tools)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _locked_closure(packages: dict[str, dict[str, object]], roots: set[str]) -> set[str]:
    """Every locked package reachable from ``roots``, extras of dependencies included."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name == "usefirst":
            continue
        seen.add(name)
        package = packages[name]
        edges = list(package.get("dependencies", []))  # type: ignore[call-overload]
        for extra_deps in dict(package.get("optional-dependencies", {})).values():  # type: ignore[call-overload]
            edges += extra_deps
        pending += [_canonical(edge["name"]) for edge in edges]
    return seen


def _lock() -> tuple[set[str], set[str]]:
    """(packages the base install holds, packages only the extras bring), from uv.lock."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {_canonical(package["name"]): package for package in lock["package"]}
    project = packages["usefirst"]
    base = _locked_closure(packages, {_canonical(edge["name"]) for edge in project["dependencies"]})
    extras = _locked_closure(
        packages,
        {
            _canonical(edge["name"])
            for edges in project["optional-dependencies"].values()
            for edge in edges
        },
    )
    return base, extras - base


SERVING_IMPORTS = """
import json, sys, tempfile
at_start = set(sys.modules)  # what site and .pth files loaded before any usefirst code
from pathlib import Path
from fastapi.testclient import TestClient

import usefirst.cli.main
from usefirst.api.app import create_app
from usefirst.kit.migrate import upgrade
from usefirst.kit.settings import Settings
from usefirst.lab.sim.marketplace import simulate  # `./dev run` seeds its demo with it
from usefirst.runtime import Runtime

database = Path(tempfile.mkdtemp()) / "lean.db"
upgrade(f"sqlite:///{database}")
runtime = Runtime(Settings(database_url=f"sqlite:///{database}", sandbox=True,
                           keys_file=Path(tempfile.mkdtemp()) / "keys.json"))
with TestClient(create_app(runtime)) as client:
    assert client.get("/healthz").status_code == 200
runtime.deliver_outbox()
runtime.run_due_sweeps()
print(json.dumps(sorted({name.split(".")[0] for name in set(sys.modules) - at_start})))
"""


def test_the_base_install_holds_no_training_tracing_or_test_package() -> None:
    base, extras_only = _lock()
    for package in ("pandas", "scikit-learn", "lightgbm", "optbinning", "pytest", "mypy"):
        assert package in extras_only
        assert package not in base
    assert "opentelemetry-sdk" in extras_only
    assert {"fastapi", "sqlalchemy", "onnxruntime", "structlog"} <= base


def test_serving_commands_import_nothing_from_an_extra() -> None:
    _, extras_only = _lock()
    imported = json.loads(
        subprocess.run(
            [sys.executable, "-c", SERVING_IMPORTS],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.splitlines()[-1]
    )
    owners = packages_distributions()
    from_extras = {
        module: sorted(_canonical(dist) for dist in owners.get(module, ()))
        for module in imported
        if any(_canonical(dist) in extras_only for dist in owners.get(module, ()))
    }
    assert from_extras == {}
