"""The house rules: each stage's dvc.yaml deps are what tools/pipeline_deps.py generates (its
import closure and prompt templates) plus the files its params name; packages import only what
the architecture allows; no import cycles; stage scripts stay thin."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pipeline_deps  # tools/pipeline_deps.py (pyproject's pytest pythonpath)
import pytest
import yaml
from pipeline_deps import CARD_SOURCE, SUMMARY_SOURCE, imports, module_file, module_name
from support import ROOT

PACKAGE = ROOT / "src" / "seedtune"
STAGES = (
    "compose",
    "queries",
    "search",
    "crawl",
    "rank",
    "synthesize",
    "card",
    "train",
    "evaluate",
    "summary",
)
#: The files each stage reads because a param names them (``${...}`` in dvc.yaml).
PARAM_FILES = {
    "queries": {"${queries.seed_file}", "data/extra_questions"},
    "evaluate": {"${evaluate.questions_file}"},
}
#: Which seedtune packages each package may import (the DAG, read bottom-up).
ALLOWED = {
    "core": set(),
    "llm": {"core"},
    "retrieval": {"core"},
    # one module per LLM task: its template, schema, requests and what its answers become
    "tasks": {"core", "llm"},
    # retrieval: the queries stage reads Naver's cafe and 지식iN titles (synthesis.titles)
    "synthesis": {"core", "llm", "retrieval", "tasks"},
    "training": {"core", "tasks"},  # tasks.ask_rag: the ask --rag prompt, for with_passages
    "evaluation": {"core", "llm", "tasks"},
    "cli": {"core", "llm", "retrieval", "synthesis", "tasks", "training", "evaluation"},
}


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def test_generated_dvc_yaml_parts_equal_the_committed_ones(capsys: pytest.CaptureFixture) -> None:
    # code deps (import closure + templates), card params, summary sources: `make deps`
    rc = pipeline_deps.main(["--check"])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("stage", sorted(PARAM_FILES))
def test_stage_deps_name_the_files_its_params_name(stage: str) -> None:
    # hand-written (the tool keeps them): a stage must rerun when such a file changes
    missing = sorted(PARAM_FILES[stage] - set(dvc_stages()[stage]["deps"]))
    assert not missing, f"dvc.yaml: stage {stage} misses deps {missing}"


def test_card_params_and_summary_sources_are_what_dvc_yaml_lists() -> None:
    from seedtune.evaluation.summary import SOURCES
    from seedtune.synthesis.card import CARD_PARAMS

    # the tool reads them from the source text: it must read what the package runs
    assert pipeline_deps.constant(CARD_SOURCE, "CARD_PARAMS") == CARD_PARAMS
    assert pipeline_deps.constant(SUMMARY_SOURCE, "SOURCES") == SOURCES
    stages = dvc_stages()
    assert tuple(stages["card"]["params"]) == CARD_PARAMS
    metrics = [d for d in stages["summary"]["deps"] if d.startswith("metrics/")]
    assert metrics == [f"metrics/{s}.json" for s in SOURCES]


def test_every_stage_has_a_script_and_a_params_section() -> None:
    assert list(dvc_stages()) == list(STAGES)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for stage in STAGES:
        assert (ROOT / "stages" / f"{stage}.py").is_file()
        assert stage in ("compose", "card", "summary") or stage in params, stage


def _package_imports() -> Iterator[tuple[str, str, Path]]:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if len(rel) == 1:
            continue  # seedtune/__init__.py
        for name in imports(path):
            parts = name.split(".")
            if len(parts) > 1:
                yield rel[0], parts[1], path


def test_packages_import_only_what_the_architecture_allows() -> None:
    bad = sorted(
        f"{path.relative_to(ROOT)} imports seedtune.{target}"
        for pkg, target, path in _package_imports()
        if target != pkg and target not in ALLOWED[pkg]
    )
    assert not bad, bad
    assert set(ALLOWED) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        # a module's own parent packages are initialised before it: not an edge
        graph[name] = (
            {module_name(module_file(n)) for n in imports(path)}
            - {name}
            - {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        )
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path, node]
                raise AssertionError(
                    "import cycle: " + " -> ".join(cycle[cycle.index(nxt) :] + [nxt])
                )
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_scripts_are_thin(stage: str) -> None:
    # statements, not lines: ruff format's layout must not decide what counts as thin
    tree = ast.parse((ROOT / "stages" / f"{stage}.py").read_text(encoding="utf-8"))
    statements = sum(isinstance(node, ast.stmt) for node in ast.walk(tree))
    assert statements <= 40, f"stages/{stage}.py has {statements} statements: move logic to src/"


def _is_submodule(dotted: str) -> bool:
    """Whether ``dotted`` names a module (``from seedtune_sandbox import demo``): an
    attribute of its package only once something imported it."""
    import importlib.util

    return importlib.util.find_spec(dotted) is not None


def test_benchmarks_import_names_that_exist() -> None:
    """Every ``from seedtune... import name`` in bench/ names something that exists, so a
    refactor that moves a function cannot leave ``make bench`` failing halfway (the benches
    import lazily, inside ``run()``, and no other test runs all of them)."""
    import importlib

    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seedtune"):
                module = importlib.import_module(node.module)
                missing += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name)
                    and not _is_submodule(f"{node.module}.{alias.name}")
                ]
    assert not missing


def _sandbox_names() -> set[str]:
    """The stand-in package's import and distribution names, read from its pyproject.toml
    and its source folder, so a rename cannot slip past the check below."""
    import tomllib

    project = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text("utf-8"))["project"]
    dist = project["name"]
    names = {dist, dist.replace("-", "_"), dist.replace("-", ".")}
    names |= {p.name for p in (ROOT / "sandbox" / "src").iterdir() if (p / "__init__.py").is_file()}
    return names


def test_product_never_names_the_stand_ins() -> None:
    """The product package works without the stand-ins installed: no import, no string,
    no comment names them; they reach the command line only through entry points."""
    names = _sandbox_names()
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {name}"
        for path in sorted(PACKAGE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1)
        for name in names
        if name.lower() in line.lower()
    ]
    assert not hits, hits
    for pkg in ("tests", "sandbox/tests"):
        assert any((ROOT / pkg).glob("test_*.py")), f"{pkg}/ has no tests"


def test_stand_in_commands_come_through_entry_points() -> None:
    """`seedtune sim`, `tiny-models` and `demo` are the stand-ins' entry points, listed by
    ``seedtune --help`` without the product knowing where they live."""
    from seedtune.cli import COMMANDS, plugins

    added = plugins()
    assert {"sim", "tiny-models", "demo"} <= set(added)
    assert not {"sim", "tiny-models", "demo"} & set(COMMANDS)
    for ep in added.values():
        assert callable(ep.load())
