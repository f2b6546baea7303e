"""Write the generated parts of dvc.yaml: each stage's code deps, and the lists code keeps.

Run ``make deps`` (``python tools/pipeline_deps.py``) after adding, removing or moving an
import of a stage, or a ``load_template`` call: it rewrites, for every stage,

- the code deps: the stage script's import closure over ``src/seedtune`` (every module it
  runs, with its packages' ``__init__.py``) and the prompt templates those modules load,
  sorted, after the hand-written deps and a marker comment;
- the lists dvc.yaml repeats from code: the card stage's ``params:`` (``CARD_PARAMS`` in
  ``synthesis/card.py``, in its order) and the summary stage's metrics deps (``SOURCES`` in
  ``evaluation/summary.py``).

Everything else (the data deps, params files, the comments, outs, plots) is left as written:
the rewrite is line-based, so dvc.yaml stays as readable as its authors made it.
``--check`` (``make deps-check``; tests/test_layout.py runs it) writes nothing and exits 1
with a one-line summary when dvc.yaml is not what this tool would write.
"""

from __future__ import annotations

import argparse
import ast
import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "seedtune"
TEMPLATES = PACKAGE / "tasks" / "templates"
DVC_YAML = ROOT / "dvc.yaml"
#: The line that opens each stage's generated code deps (after its hand-written deps).
CODE_MARKER = "# code: written by `make deps` (tools/pipeline_deps.py)"
#: The line that opens a generated list that mirrors a constant in code.
LIST_MARKER = "# {source}: written by `make deps`"
CARD_SOURCE = "src/seedtune/synthesis/card.py"
SUMMARY_SOURCE = "src/seedtune/evaluation/summary.py"

ITEM_INDENT = " " * 6  # a deps or params item: `      - value`
STAGE_LINE = re.compile(r"^  ([A-Za-z0-9_-]+):\s*(#.*)?$")
KEY_LINE = re.compile(r"^    ([A-Za-z_]+):\s*(#.*)?$")


# -- the import closure ------------------------------------------------------------------


def module_file(name: str) -> Path | None:
    """The source file of module ``seedtune....`` (a package's __init__.py), or None."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    """The dotted name of a file under src/ (``seedtune.core`` for its __init__.py)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _nodes(path: Path, mtime_ns: int) -> tuple[ast.AST, ...]:
    """Every node of ``path``'s syntax tree, parsed once per version of the file (every
    stage's closure walks the same core modules)."""
    return tuple(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def nodes(path: Path) -> tuple[ast.AST, ...]:
    """:func:`_nodes` of the file as it is now."""
    return _nodes(path, path.stat().st_mtime_ns)


def imports(path: Path) -> Iterator[str]:
    """Every seedtune module ``path`` imports, at the top or inside a function."""
    for node in nodes(path):
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
    for node in nodes(path):
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


def code_deps(stage: str) -> list[str]:
    """The stage's code deps as dvc.yaml spells them: its script first, then its closure and
    templates, sorted."""
    script = ROOT / "stages" / f"{stage}.py"
    if not script.is_file():
        raise SystemExit(f"dvc.yaml: stage {stage} has no script stages/{stage}.py")
    files = closure(script) - {script}
    return [script.relative_to(ROOT).as_posix()] + sorted(
        p.relative_to(ROOT).as_posix() for p in files
    )


def is_code(dep: str) -> bool:
    """Whether a dep is code this tool writes (the rest is hand-written)."""
    return dep.startswith(("src/", "stages/"))


def constant(rel: str, name: str) -> tuple[str, ...]:
    """The literal tuple ``name`` is assigned in the module ``rel`` (read, not imported: the
    tool runs without the package's dependencies)."""
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit(f"{rel}: no {name} = (...) to read")


# -- dvc.yaml, line by line --------------------------------------------------------------


def item_value(line: str) -> str:
    """The value of an item line (``      - data/x  # why``: ``data/x``)."""
    return str(yaml.safe_load(line.strip()[1:].strip() or "''"))


def item_lines(values: list[str], marker: str) -> list[str]:
    return [ITEM_INDENT + marker] + [f"{ITEM_INDENT}- {v}" for v in values]


def is_marker(line: str) -> bool:
    text = line.strip()
    return text == CODE_MARKER or (text.startswith("# src/") and text.endswith("`make deps`"))


def rewrite_deps(stage: str, block: list[str]) -> list[str]:
    """A stage's deps block: its hand-written deps as they are, then its code deps."""
    kept = [ln for ln in block if not is_marker(ln)]
    kept = [ln for ln in kept if not ln.strip().startswith("- ") or not is_code(item_value(ln))]
    if stage == "summary":  # the metrics it reads are evaluation/summary.py's SOURCES
        kept = [ln for ln in kept if not re.fullmatch(r"metrics/[^/]+\.json", item_value(ln))]
        sources = [f"metrics/{s}.json" for s in constant(SUMMARY_SOURCE, "SOURCES")]
        kept = item_lines(sources, LIST_MARKER.format(source=f"{SUMMARY_SOURCE} SOURCES")) + kept
    return kept + item_lines(code_deps(stage), CODE_MARKER)


def rewrite_params(stage: str, block: list[str]) -> list[str]:
    """A stage's params block: as written, but the card's is synthesis/card.py's list."""
    if stage != "card":
        return block
    return item_lines(
        list(constant(CARD_SOURCE, "CARD_PARAMS")),
        LIST_MARKER.format(source=f"{CARD_SOURCE} CARD_PARAMS"),
    )


def render(text: str) -> str:
    """dvc.yaml with every generated block rewritten (the same text when up to date)."""
    rewriters: dict[str, Callable[[str, list[str]], list[str]]] = {
        "deps": rewrite_deps,
        "params": rewrite_params,
    }
    lines = text.splitlines()
    out: list[str] = []
    stage: str | None = None
    in_stages = False
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if line and not line.startswith((" ", "#")):
            in_stages = line.startswith("stages:")
            stage = None
            continue
        if not in_stages:
            continue
        if match := STAGE_LINE.match(line):
            stage = match.group(1)
            continue
        key = KEY_LINE.match(line)
        if stage is None or key is None or key.group(1) not in rewriters:
            continue
        block: list[str] = []
        while i < len(lines) and lines[i].startswith(ITEM_INDENT):  # items and comments
            block.append(lines[i])
            i += 1
        out += rewriters[key.group(1)](stage, block)
    return "\n".join(out) + "\n"


def stage_lists(text: str) -> dict[str, dict[str, list[str]]]:
    """{stage: {"deps": [...], "params": [...]}} as DVC reads them."""
    stages = yaml.safe_load(text)["stages"]
    return {
        name: {"deps": list(s.get("deps", [])), "params": list(s.get("params", []))}
        for name, s in stages.items()
    }


def summary(old: str, new: str) -> str:
    """One line: what differs between committed and generated, stage by stage."""
    before, after = stage_lists(old), stage_lists(new)
    parts = []
    for stage in after:
        for key in ("deps", "params"):
            was, now = before.get(stage, {}).get(key, []), after[stage][key]
            added = [f"+{v}" for v in now if v not in was]
            removed = [f"-{v}" for v in was if v not in now]
            if added or removed:
                parts.append(f"{stage} {key} {' '.join(added + removed)}")
            elif was != now:
                parts.append(f"{stage} {key} order")
    return "; ".join(parts) or "comments or layout of generated lines"


def main(argv: list[str] | None = None) -> int:
    """Rewrite dvc.yaml, or with ``--check`` say in one line how it is stale (exit 1)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when stale")
    ap.add_argument("--file", type=Path, default=DVC_YAML, help="the dvc.yaml to rewrite")
    args = ap.parse_args(argv)
    old = args.file.read_text(encoding="utf-8")
    new = render(old)
    for stage, lists in stage_lists(new).items():  # a stage with no `deps:` line to fill
        if not set(code_deps(stage)) <= set(lists["deps"]):
            print(f"{args.file.name}: stage {stage} needs a `deps:` list", file=sys.stderr)
            return 1
    if new == old:
        return 0
    if args.check:
        print(f"{args.file.name} is stale (run `make deps`): {summary(old, new)}", file=sys.stderr)
        return 1
    tmp = args.file.with_name(args.file.name + ".tmp")  # never a half-written dvc.yaml
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(args.file)
    print(f"{args.file.name}: {summary(old, new)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
