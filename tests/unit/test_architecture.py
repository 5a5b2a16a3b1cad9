"""The house's rules, read from the code's own imports (every import statement, also those inside functions).

docs/architecture.md draws the layers; these tests keep the code to them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "projections", "service")

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("events",),
    ("projections",),
    ("service.settings", "service.signing", "service.stores", "service.logs", "service.auth"),
    ("service.followers",),
    ("service.webhooks",),
    ("service.queries",),
    ("service.http",),
    ("service.api", "service.web"),
    ("service.app", "service.cli", "service.__main__"),
)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield _module(path), path


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module name an import statement in the file names, with its line."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:  # `from service import api` names service.api
                yield f"{node.module}.{alias.name}", node.lineno


def _layer(module: str) -> int | None:
    for number, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = [module for module, _ in _modules() if module not in PACKAGES and _layer(module) is None]
    assert not unplaced, f"modules in no layer of LAYERS (add them where they belong): {unplaced}"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    upward = []
    for module, path in _modules():
        own = _layer(module)
        for imported, line in _imports(path):
            theirs = _layer(imported)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} {module} -> {imported}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("package", ["service.cli", "service.web", "service.queries"])
def test_the_cli_the_page_and_the_queries_never_import_the_http_controllers(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for module, path in _modules()
        if module == package or module.startswith(package + ".")
        for imported, line in _imports(path)
        if imported == "service.api" or imported.startswith("service.api.")
    ]
    assert not found, "\n".join(found)


_MACHINERY = {"sqlite3", "psycopg", "psycopg_pool", "threading", "time", "asyncio", "eventsourcing", "sqlalchemy"}
_CLOCK_CALLS = {"now", "today", "utcnow", "time", "monotonic", "perf_counter"}


def test_projections_are_only_folds() -> None:
    """No SQL, no threads, no clock: what a fold answers depends on its events and its arguments alone."""
    found = []
    for module, path in _modules():
        if not module.startswith("projections"):
            continue
        for imported, line in _imports(path):
            if imported.split(".")[0] in _MACHINERY:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CLOCK_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the clock ({ast.unparse(node.func)})")
    assert not found, "\n".join(found)


def test_nothing_in_the_service_reads_the_wall_clock_but_the_one_default() -> None:
    """The clock is injected (create_app(clock=...)); `events.application.utcnow` is the one default."""
    found = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"now", "today", "utcnow"}
                and ast.unparse(node.func.value) in {"dt.datetime", "datetime", "datetime.datetime", "dt.date", "date"}
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert found == [found[0]] and "events/application.py" in found[0], "\n".join(found)


def test_the_test_harness_does_not_ship_in_the_package() -> None:
    assert not (ROOT / "service" / "process.py").exists()
    assert (ROOT / "tests" / "support" / "process.py").exists()


_LITESTAR_ROUTES = {"get", "post", "put", "patch", "delete", "head", "route"}


def test_routes_are_declared_with_the_decorators_that_hand_guards_the_handler_itself() -> None:
    """litestar's own decorators copy the handler for each guard on every request (service/http/routes.py)."""
    found = [
        f"{module}:{imported}" for module, path in _modules() if module != "service.http.routes"
        for imported, _ in _imports(path)
        if imported.startswith("litestar.") and imported.rpartition(".")[2] in _LITESTAR_ROUTES
    ]
    assert found == []
