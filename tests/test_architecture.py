"""The house keeps its plan: no import cycle between files in src/usefirst, and the import-linter
contracts at the end of pyproject.toml (layers, domains calling no other domain's services, the kit
importing no domain, serving code never importing the lab) are kept.

Every import counts, wherever it is written: at the top of a module, inside a function, or under
``if TYPE_CHECKING:`` (grimp reads them all from the source; nothing is imported to find them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

import grimp
import pytest
from grimp import ImportGraph

import usefirst

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The source tree the tests import, which is the one to check.
SOURCE_ROOT = Path(usefirst.__file__).resolve().parents[1]


def import_cycles(graph: ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other, directly or through one another (each
    strongly connected component of more than one module, or a module importing itself), each
    group sorted by name, the largest group first."""
    index_of: dict[str, int] = {}
    lowest_reachable: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index_of:
            continue
        # Tarjan's algorithm, iterative: each frame is a module and the imports still to visit.
        frames = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index_of[root] = lowest_reachable[root] = len(index_of)
        stack.append(root)
        on_stack.add(root)
        while frames:
            module, imported_modules = frames[-1]
            imported = next(imported_modules, None)
            if imported is not None:
                if imported not in index_of:
                    index_of[imported] = lowest_reachable[imported] = len(index_of)
                    stack.append(imported)
                    on_stack.add(imported)
                    frames.append(
                        (imported, iter(sorted(graph.find_modules_directly_imported_by(imported))))
                    )
                elif imported in on_stack:
                    lowest_reachable[module] = min(lowest_reachable[module], index_of[imported])
                continue
            frames.pop()
            if frames:
                importer = frames[-1][0]
                lowest_reachable[importer] = min(
                    lowest_reachable[importer], lowest_reachable[module]
                )
            if lowest_reachable[module] == index_of[module]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or graph.direct_import_exists(importer=module, imported=module):
                    groups.append(sorted(group))
    return sorted(groups, key=lambda group: (-len(group), group))


def shortest_cycle(graph: ImportGraph, group: list[str]) -> list[str]:
    """The shortest way from the group's first module back to itself, through the group: one
    loop to break (the group may hold more)."""
    start = group[0]
    members = set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in members:
                continue
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    raise AssertionError(f"{start} is in no cycle of {group}")


def describe_cycles(graph: ImportGraph, cycles: Iterable[list[str]]) -> str:
    lines: list[str] = []
    for number, group in enumerate(cycles, start=1):
        lines.append(f"cycle {number}: {len(group)} modules import each other")
        lines += [f"    {module}" for module in group]
        lines.append("  one loop in it, import by import:")
        loop = shortest_cycle(graph, group)
        for importer, imported in pairwise(loop):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = (
                f"line {details[0]['line_number']}: {details[0]['line_contents']}"
                if details
                else "imported"
            )
            lines.append(f"    {importer} -> {imported}  ({where})")
    return "\n".join(lines)


def test_no_import_cycle_between_files() -> None:
    graph = grimp.build_graph("usefirst", cache_dir=None)

    cycles = import_cycles(graph)

    if cycles:
        pytest.fail(
            f"{len(cycles)} import cycle(s) between files in src/usefirst; cut each one so that "
            "imports only point down (entry points, flows, domains, kit):\n"
            + describe_cycles(graph, cycles),
            pytrace=False,
        )


def test_the_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])
        ),
        "COLUMNS": "200",
    }

    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(PROJECT_ROOT / "pyproject.toml")],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    if result.returncode != 0:
        pytest.fail(
            f"import-linter reports broken contracts:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )


# --- The cycle finder itself --------------------------------------------------------------------


def graph_of(*imports: tuple[str, str]) -> ImportGraph:
    graph = ImportGraph()
    for importer, imported in imports:
        graph.add_module(importer)
        graph.add_module(imported)
        graph.add_import(
            importer=importer,
            imported=imported,
            line_number=1,
            line_contents=f"import {imported}",
        )
    return graph


def test_finds_each_cycle_and_nothing_else() -> None:
    graph = graph_of(
        ("shop.a", "shop.b"),
        ("shop.b", "shop.c"),
        ("shop.c", "shop.a"),
        ("shop.c", "shop.kit"),
        ("shop.entry", "shop.a"),
        ("shop.x", "shop.y"),
        ("shop.y", "shop.x"),
        ("shop.self", "shop.self"),
    )

    cycles = import_cycles(graph)

    assert cycles == [["shop.a", "shop.b", "shop.c"], ["shop.x", "shop.y"], ["shop.self"]]
    assert shortest_cycle(graph, cycles[0]) == ["shop.a", "shop.b", "shop.c", "shop.a"]
    assert describe_cycles(graph, cycles[1:2]) == (
        "cycle 1: 2 modules import each other\n"
        "    shop.x\n"
        "    shop.y\n"
        "  one loop in it, import by import:\n"
        "    shop.x -> shop.y  (line 1: import shop.y)\n"
        "    shop.y -> shop.x  (line 1: import shop.x)"
    )


def test_a_graph_that_only_points_down_has_no_cycle() -> None:
    graph = graph_of(
        ("shop.entry", "shop.flow"),
        ("shop.flow", "shop.orders"),
        ("shop.flow", "shop.credit"),
        ("shop.orders", "shop.kit"),
        ("shop.credit", "shop.kit"),
        ("shop.entry", "shop.kit"),
    )

    assert import_cycles(graph) == []


def test_one_loop_is_found_in_a_knot_of_several() -> None:
    graph = graph_of(
        ("shop.a", "shop.b"),
        ("shop.b", "shop.a"),
        ("shop.b", "shop.c"),
        ("shop.c", "shop.d"),
        ("shop.d", "shop.b"),
    )

    assert import_cycles(graph) == [["shop.a", "shop.b", "shop.c", "shop.d"]]
    assert shortest_cycle(graph, ["shop.a", "shop.b", "shop.c", "shop.d"]) == [
        "shop.a",
        "shop.b",
        "shop.a",
    ]


def test_imports_inside_functions_and_for_type_checking_close_cycles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cycle_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "service.py").write_text(
        "def work() -> None:\n    from cycle_probe import repository\n\n    repository.read()\n"
    )
    (package / "repository.py").write_text(
        "from __future__ import annotations\n\n"
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n    from cycle_probe.service import work\n\n\n"
        "def read() -> None:\n    pass\n"
    )
    (package / "kit.py").write_text("import cycle_probe.repository\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    graph = grimp.build_graph("cycle_probe", cache_dir=None)

    assert import_cycles(graph) == [["cycle_probe.repository", "cycle_probe.service"]]
