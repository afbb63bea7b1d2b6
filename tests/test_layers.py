"""The layout's one rule, checked: a module imports only from its own layer or the layers below
(docs/design-notes.md, "Layout"). The two web front-ends are siblings that never import each
other. An import that runs back up a layer fails here, naming the file and the import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "m2m"

# Bottom first. A module belongs to the first layer naming it or a package holding it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "m2m",  # the package's face: __version__
            "m2m.audit",
            "m2m.clock",
            "m2m.credentials",
            "m2m.errors",
            "m2m.events",
            "m2m.fairness",
            "m2m.freetext",
            "m2m.idempotency",
            "m2m.identifiers",
            "m2m.labels",
            "m2m.lifecycle",
            "m2m.logs",
            "m2m.metrics",
            "m2m.request_tally",
            "m2m.gc_tuning",
            "m2m.page_reads",
            "m2m.paging",
            "m2m.profile",
            "m2m.sim_edit",
            "m2m.sim_query",
            "m2m.usage",
            "m2m.usage_reactivation",
            "m2m.usage_records",
            "m2m.usage_simulator",
        ),
    ),
    ("sdk", ("m2m.client",)),
    ("storage", ("m2m.storage", "m2m.migrations")),
    ("settings", ("m2m.settings",)),
    (
        "domain",
        (
            "m2m.accounts",
            "m2m.access",
            "m2m.tokens",
            "m2m.failure_budget",
            "m2m.rate_limits",
            "m2m.intake",
            "m2m.inventory",
            "m2m.callbacks",
            "m2m.network",
            "m2m.network_faults",
            "m2m.simimport",
            "m2m.usage_import",
            "m2m.usage_policy",
            "m2m.sandbox_usage",
            "m2m.operator_tokens",
            "m2m.usage_views",
            "m2m.usage_overview",
            "m2m.sandbox",
            "m2m.scenario",
        ),
    ),
    ("worker", ("m2m.worker", "m2m.worker_setup", "m2m.usage_feed")),
    ("services", ("m2m.services", "m2m.health", "m2m.sandbox_controls")),
    ("front-ends", ("m2m.api", "m2m.console")),
    (
        "application",
        (
            "m2m.asgi",
            "m2m.http_limits",
            "m2m.http_head",
            "m2m.http_coalesce",
            "m2m.security_headers",
            "m2m.observe",
        ),
    ),
    ("cli", ("m2m.cli",)),
    ("testing", ("m2m.testing",)),  # drives a sandbox from outside, through HTTP
]
SIBLINGS_THAT_NEVER_MEET = ("m2m.api", "m2m.console")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "m2m" names the package's face (its __init__) only, not everything below it.
            matches = module == prefix if prefix == "m2m" else _within(module, prefix)
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the design notes")
    return best[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if _within(name, "m2m")]


def _imported_module(name: str) -> str:
    """``m2m.storage.outbox.DueDelivery`` -> the longest prefix that is a module or package."""
    parts = name.split(".")
    while len(parts) > 1:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return "m2m"


SOURCES = sorted(PACKAGE.rglob("*.py"))


def violations(module: str, path: Path) -> list[str]:
    """The imports of ``path`` (the source of ``module``) that break the rule."""
    own = _layer(module)
    sibling = [p for p in SIBLINGS_THAT_NEVER_MEET if _within(module, p)]
    wrong = []
    for line, name in _imports(path):
        target = _imported_module(name)
        if _layer(target) > own:
            wrong.append(f"line {line}: {target} ({LAYERS[_layer(target)][0]})")
        elif sibling and any(
            _within(target, p) for p in SIBLINGS_THAT_NEVER_MEET if p != sibling[0]
        ):
            wrong.append(f"line {line}: {target} (the other front-end)")
    return wrong


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up_a_layer(path: Path) -> None:
    module = _module_name(path)
    wrong = violations(module, path)
    assert not wrong, f"{module} ({LAYERS[_layer(module)][0]}) imports from above: " + "; ".join(
        wrong
    )


def test_the_layer_table_knows_every_module() -> None:
    for path in SOURCES:
        _layer(_module_name(path))


def test_a_module_missing_from_the_table_is_caught() -> None:
    with pytest.raises(AssertionError, match="in no layer"):
        _layer("m2m.somewhere_new")


def test_the_check_catches_an_import_that_runs_up(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "from m2m.api.deps import Caller\nfrom m2m.storage.outbox import DueDelivery\n"
    )
    assert violations("m2m.storage.example", source) == ["line 1: m2m.api.deps (front-ends)"]
    assert violations("m2m.console.example", source) == [
        "line 1: m2m.api.deps (the other front-end)"
    ]
    assert violations("m2m.asgi", source) == []
