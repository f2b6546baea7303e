"""The README is a front door: short, naming every dvc.yaml stage in its diagram and its
stage table; and no link in it or in the reference behind it leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support import ROOT

README = ROOT / "README.md"
#: The pages that link into each other: the front door and everything it points to.
DOCS = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "bench" / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
]
#: What the issue asked of the front door (TRL's README is 8.8k characters).
MAX_CHARS = 9_000
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def stages() -> list[str]:
    """The stage names dvc.yaml declares, in its order."""
    return list(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def readme() -> str:
    return README.read_text(encoding="utf-8")


def diagram(text: str) -> str:
    """The README's DAG: its first fenced block."""
    match = FENCE.search(text)
    assert match, "README.md: no fenced block with the DAG diagram"
    return match.group(1)


def stage_rows(text: str) -> list[list[str]]:
    """The cells of each row of the README's table whose header starts with `| stage |`."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| stage |")), None)
    assert start is not None, "README.md: no stage table (a header starting `| stage |`)"
    rows = []
    for line in lines[start + 2 :]:  # past the header and its |---| rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (lowercase, punctuation dropped,
    spaces to hyphens), headings inside fenced blocks left out."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    slugs = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def test_dvc_yaml_has_the_stages_the_docs_describe() -> None:
    # guards the tests below against reading an empty or renamed stages: section
    assert {"compose", "train", "evaluate", "summary"} <= set(stages())


@pytest.mark.parametrize("stage", stages())
def test_every_stage_is_in_the_diagram(stage: str) -> None:
    # a node: the name with an edge (an arrow or a branch) touching it
    node = rf"[▶◀─┬└]\s*{stage}\b|\b{stage}\s*[▶◀─┬]"
    assert re.search(node, diagram(readme())), f"README.md diagram lacks {stage}"


def test_the_stage_table_lists_every_stage_in_dvc_yaml_order() -> None:
    assert [row[0].strip("`") for row in stage_rows(readme())] == stages()


def test_the_readme_stays_a_front_door() -> None:
    chars = len(readme())  # characters, as `wc -m` counts them, not bytes
    assert chars < MAX_CHARS, f"README.md has {chars} characters: move reference to docs/"


def test_the_stage_table_names_outputs_dvc_yaml_declares() -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for row in stage_rows(readme()):
        outs = {next(iter(o)) if isinstance(o, dict) else o for o in dvc[row[0]].get("outs", [])}
        for path in re.findall(r"`([^`]+)`", row[-1]):
            assert path.rstrip("/") in outs, f"README.md: {row[0]}: {path} is not its output"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page: Path) -> None:
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...: not ours to check here
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}: link {target}"
        assert dest.exists(), f"{where}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{where}: no such heading"
