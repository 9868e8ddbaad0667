"""What serving needs is the base install: `./dev run` installs only the base dependencies of
uv.lock, so nothing it runs (migrate, the demo simulation, admin, serve, worker) may import a
package that only an extra brings (training, tracing, test tools)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
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


def test_the_base_install_holds_no_training_tracing_or_test_package() -> None:
    base, extras_only = _lock()
    for package in ("pandas", "scikit-learn", "lightgbm", "optbinning", "pytest", "mypy"):
        assert package in extras_only
        assert package not in base
    assert "opentelemetry-sdk" in extras_only
    assert {"fastapi", "sqlalchemy", "onnxruntime", "structlog"} <= base


# The serving commands' work, run with every module that only an extra installs made
# unimportable: what a base install (`./dev run`) has, even in a venv that holds every extra
# (libraries such as SQLAlchemy import optional packages like greenlet when they find them).
SERVING_WITHOUT_EXTRAS = """
import json, sys, tempfile
from importlib.abc import MetaPathFinder

BLOCKED = frozenset(json.loads(sys.stdin.read()))


class ExtrasAreNotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, ExtrasAreNotInstalled())
at_start = set(sys.modules)  # what site and .pth files loaded before any usefirst code

from fastapi.testclient import TestClient
from pathlib import Path

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
print(json.dumps(sorted(set(sys.modules) - at_start)))
"""


def _modules_of(distribution: str) -> set[str]:
    """The dotted names of the modules a distribution installed."""
    modules = set()
    for file in metadata.distribution(distribution).files or ():
        path = str(file)
        if path.startswith("..") or ".dist-info/" in path or ("/" not in path and "." not in path):
            continue
        stem, _, suffix = path.partition(".")
        if path.endswith(".py"):
            stem = path[: -len(".py")]
        elif suffix.split(".")[-1] not in ("so", "pyd"):
            continue
        name = stem.replace("/", ".").removesuffix(".__init__")
        if name.replace(".", "").replace("_", "").isalnum():
            modules.add(name)
    return modules


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_serving_commands_work_without_any_extra() -> None:
    base, extras_only = _lock()
    base_modules = set().union(*(_modules_of(name) for name in base if _installed(name)))
    blocked = (
        set().union(*(_modules_of(name) for name in extras_only if _installed(name))) - base_modules
    )
    imported = json.loads(
        subprocess.run(
            [sys.executable, "-c", SERVING_WITHOUT_EXTRAS],
            input=json.dumps(sorted(blocked)),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.splitlines()[-1]
    )
    assert "usefirst.api.app" in imported and "usefirst.lab.sim.marketplace" in imported
    assert sorted(set(imported) & blocked) == []
