"""The house rules: each stage's dvc.yaml deps cover its import closure, its prompt templates
and the files its params name; packages import only what the architecture allows; no import
cycles; stage scripts stay thin."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "seedtune"
TEMPLATES = PACKAGE / "tasks" / "templates"
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
    "offline": {"core"},
    "cli": {"core", "llm", "retrieval", "synthesis", "tasks", "training", "evaluation"},
}


def module_file(name: str) -> Path | None:
    """The source file of module ``seedtune....`` (a package's __init__.py), or None."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every seedtune module ``path`` imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from seedtune.x import y`: y may be a submodule or a name in x
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "seedtune" and module_file(name):
                yield name


def templates(path: Path) -> Iterator[str]:
    """Prompt templates ``path`` loads by name (``load_template("queries")``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "load_template"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.args[0].value


def closure(script: Path) -> set[Path]:
    """Every file the script runs: seedtune modules (with their packages' __init__.py),
    followed transitively, and the prompt templates they load."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix != ".py":
            continue
        for name in imports(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                found = module_file(".".join(parts[:i]))
                if found:
                    todo.append(found)
        todo += [TEMPLATES / f"{t}.txt" for t in templates(path)]
    return seen


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_deps_cover_its_import_closure_and_files(stage: str) -> None:
    deps = set(dvc_stages()[stage]["deps"])
    wanted = {p.relative_to(ROOT).as_posix() for p in closure(ROOT / "stages" / f"{stage}.py")}
    wanted |= PARAM_FILES.get(stage, set())
    missing = sorted(wanted - deps)
    assert not missing, f"dvc.yaml: stage {stage} misses deps {missing}"
    stale = sorted(d for d in deps if d.startswith("src/") and d not in wanted)
    assert not stale, f"dvc.yaml: stage {stage} lists {stale}, which it does not import"


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
    """Whether ``dotted`` names a module (``from seedtune.offline import demo``): an
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
