"""The package's layout keeps its promises: layers, no import circles, small modules.

Read from the source, as a newcomer would: every ``import`` of the package,
including the ones inside functions and under ``TYPE_CHECKING``, is an edge
of the graph checked here. See ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flask_customer_portal

PACKAGE = Path(flask_customer_portal.__file__).parent
NAME = "flask_customer_portal"

#: Every module of the package in its layer; an import may only go to the same
#: layer or one below. A new module must be placed here.
LAYERS: dict[str, tuple[str, ...]] = {
    # The ground everything stands on: no state, no request, no domain rule.
    "core": (
        "errors",
        "audit",
        "signals",
        "i18n",
        "validation",
        "db",
        "models",
        "models.access",
        "models.billing",
        "models.catalogue",
        "models.licenses",
        "config",
        "formatting",
        "urls",
        "theming",
    ),
    # Pluggable parts: the payment providers, the invoice renderer, the mailer.
    "leaves": (
        "providers",
        "providers.base",
        "providers.test",
        "providers.test_tables",
        "providers.stripe",
        "providers.stripe_config",
        "providers.stripe_sdk",
        "invoices",
        "mail",
    ),
    # What the portal keeps per app, and the one way to reach it.
    "state": ("state", "proxies"),
    # Plain functions of explicit arguments: no request, no view.
    "domain": (
        "outbox",
        "links",
        "businesses",
        "records",
        "deep_links",
        "customers",
        "emails",
        "access",
        "profile",
        "billing",
        "history",
        "subscriptions",
        "cancellation",
        "cancellation_reasons",
        "provider_customers",
        "cards",
        "plans",
        "proration",
        "catalogue",
        "listings",
        "settlement",
        "payments",
        "invoice_payments",
        "licenses",
        "summary",
        "documents",
        "retention",
        "stripe_sync",
        "stripe_events",
        "stripe_backfill",
        "stripe_cards",
        "migrate",
        "host_migrations",
        "migrations",
        "migrations.env",
    ),
    # What a request or a command reaches: pages, the HTTP API, the CLI.
    "interface": (
        "views",
        "views.access",
        "views.auth",
        "views.billing",
        "views.flows",
        "views.guard",
        "views.health",
        "views.language",
        "views.licenses",
        "views.messages",
        "views.overview",
        "views.payments",
        "views.pay_invoice",
        "views.cards",
        "views.profile",
        "views.staff",
        "views.subscriptions",
        "views.test_provider",
        "views.stripe_provider",
        "views.theme",
        "views.webhooks",
        "api",
        "openapi",
        "cli",
        "stripe_cli",
    ),
    # Where it is all put together, and the public API.
    "root": ("extension", "", "testing", "pytest_plugin"),
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
#: The pluggable parts import nothing above the core.
LEAVES = LAYERS["leaves"]
MAX_LINES = 450


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name below it (``""`` is the package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if "versions" in parts:  # the migrations' revisions are history, run by Alembic
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Return the package's modules that module ``name`` imports, by dotted name."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [part for part in package if part]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif node.module and (node.module == NAME or node.module.startswith(NAME + ".")):
                base = []
            else:
                continue
            module = [*base, *(node.module or "").removeprefix(NAME).lstrip(".").split(".")]
            target = ".".join(part for part in module if part)
            for alias in node.names:
                child = f"{target}.{alias.name}".lstrip(".")
                edges.add(child if child in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == NAME or alias.name.startswith(NAME + "."):
                    edges.add(alias.name.removeprefix(NAME).lstrip("."))
    edges.discard(name)
    return edges


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert sorted(set(graph) - set(RANK)) == [], "place the new modules in LAYERS"
    assert sorted(set(RANK) - set(graph)) == [], "LAYERS names modules that are gone"


def test_no_import_reaches_up(graph: dict[str, set[str]]) -> None:
    """Views → domain → state → leaves → core: an import never goes to a higher layer."""
    upward = [
        f"{source or NAME} ({layer_of(source)}) imports {target} ({layer_of(target)})"
        for source, targets in graph.items()
        for target in targets
        if RANK[target] > RANK[source]
    ]
    assert upward == []


def test_the_pluggable_parts_are_leaves(graph: dict[str, set[str]]) -> None:
    """Providers, the invoice renderer and the mailer import nothing but the core."""
    reaching = [
        f"{source} imports {target}"
        for source in LEAVES
        for target in graph[source]
        if target not in LAYERS["core"] and not target.startswith(source.split(".")[0])
    ]
    assert reaching == []


def test_there_is_no_import_circle(graph: dict[str, set[str]]) -> None:
    # A depth-first walk: meeting a module still on the path is a circle.
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "on the path"
        for target in sorted(graph[module]):
            if state.get(target) == "on the path":
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_graph_is_read_right(graph: dict[str, set[str]]) -> None:
    """The reader finds relative, absolute and package imports, or the tests above prove nothing."""
    assert {"proxies", "models", "emails"} <= graph["access"]
    assert "views.auth" in graph["views.payments"]
    assert "views.access" in graph["views"]
    assert {"db", "migrate"} <= graph["migrations.env"]
    assert "providers.test" in graph["providers"]


def test_no_module_is_too_long_to_read() -> None:
    long = {
        name or NAME: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_portals_state_is_reached_through_one_proxy() -> None:
    """Only proxies.py reads the portal's entry of ``app.extensions`` (extension.py sets it)."""
    readers = sorted(
        name or NAME
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "extensions"
        and ast.unparse(node.slice) in ("EXTENSION_KEY", "'customer_portal'")
        and name not in ("proxies", "extension")
    )
    assert readers == []


def layer_of(module: str) -> str:
    return next(layer for layer, members in LAYERS.items() if module in members)
