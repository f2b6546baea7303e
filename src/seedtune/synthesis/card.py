"""A Hugging Face style dataset card for data/instructions.jsonl: statistics and the card text.

:func:`read_inputs` gathers what the pipeline left on disk (the instructions, the rejects
and metrics files of the stages that exist, params.yaml); :func:`dataset_statistics` and
:func:`render_card` are pure. The card is README-style markdown with a YAML front-matter
block the Hub (and ``huggingface_hub.DatasetCard``) parses. Its text depends only on its
inputs (no dates, no machine names), so the DVC output is reproducible.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from seedtune.core import pii
from seedtune.core.errors import InputError
from seedtune.core.markdown import Markdown, md_code, md_text
from seedtune.core.paths import INSTRUCTIONS
from seedtune.core.pii import TAGS
from seedtune.core.records import iter_jsonl, read_json, read_jsonl, read_yaml_mapping

#: Stages whose data/rejects/<stage>.jsonl the card reads, when it exists.
REJECT_STAGES = ("queries", "search", "crawl", "rank", "synthesize")
#: Stages whose metrics/<stage>.json the card reads, when it exists.
METRIC_STAGES = ("queries", "search", "crawl", "synthesize")
#: Stages whose metrics carry ``pii_masked`` ({kind: count}).
PII_STAGES = ("search", "crawl", "synthesize")
#: The params the card shows (`make deps` writes them into dvc.yaml as the card's ``params:``).
CARD_PARAMS = (
    "llm.model",
    "search.categories",
    "search.display",
    "search.sort",
    "crawl.per_question",
    "crawl.respect_robots",
    "rank.model",
    "rank.top_k",
    "rank.passage_tokens",
    "synthesize.top_k",
    "synthesize.eval_fraction",
    "train.model.name_or_path",
)
TOP_HOSTS = 20
TOP_REASONS = 10

#: What each column means; a column the rows have and this does not know is still listed.
FIELDS = {
    "question": "The question (or instruction), in Korean: written by the LLM for a seed word, "
    "rewritten by the LLM from a real person's post title, or taken from a "
    "question file (`question_source` says which).",
    "answer": "The grounded Korean answer the LLM wrote from `passages`; personal data masked.",
    "sources": "Links of the web pages or search results the passages come from, in the "
    "order they were given to the LLM.",
    "passages": "The text the answer was grounded on, parallel to `sources` (quoted from "
    "third-party pages; personal data masked).",
    "source_categories": "Naver search category of each source, parallel to `sources` "
    "(blog, news, kin, webkr, cafearticle, encyc, ...).",
    "source_kinds": "Where each passage was cut from, parallel to `sources`: `page` (the "
    "crawled web page) or `snippet` (Naver's search result description).",
    "question_source": "Where the question came from: `llm` (written by the LLM for a seed "
    "word), `titles` (a real person's Naver cafe or 지식iN post title, "
    "rewritten as a question by the LLM) or `user` (a question file).",
    "seed": "The seed word the question was written for, or whose search found the post; "
    "null for `user` questions.",
    "post_title": "For `titles` questions, the title of the post the question was rewritten "
    "from (the person's own words); null otherwise.",
    "post_link": "For `titles` questions, the link of that post; null otherwise.",
    "post_category": "For `titles` questions, where that post is: `cafearticle` (a Naver "
    "cafe) or `kin` (지식iN); null otherwise.",
    "split": "`train` or `eval`: a deterministic hash split of the question, topped up so "
    "that every question source is in `eval`.",
    "model": "The LLM that wrote the answer.",
    "template": "Version of the prompt template the answer was written with.",
}


@dataclass(frozen=True)
class CardInputs:
    """Everything the card and the browser page are made from."""

    rows: list[dict[str, Any]]
    rejects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def iter_rows(instructions: Path | str) -> Iterator[dict[str, Any]]:
    """The instruction rows, one at a time (an absent file is an :class:`InputError` at once,
    a row that is not a JSON object one when it is reached)."""
    path = Path(instructions)
    if not path.is_file():
        raise InputError(f"{path}: missing (run the upstream stage: `dvc repro`)")

    def rows() -> Iterator[dict[str, Any]]:
        for n, row in enumerate(iter_jsonl(path), 1):
            if not isinstance(row, dict):
                raise InputError(f"{instructions}: row {n} is not a JSON object")
            yield row

    return rows()


def read_context(
    rejects_dir: Path | str, metrics_dir: Path | str, params: Path | str
) -> CardInputs:
    """Whichever rejects, metrics and params files exist, without the rows (the card stage
    streams those: :func:`iter_rows`)."""
    rejects = {
        s: [r for r in read_jsonl(p) if isinstance(r, dict)]
        for s in REJECT_STAGES
        if (p := Path(rejects_dir) / f"{s}.jsonl").is_file()
    }
    metrics = {}
    for stage in METRIC_STAGES:
        path = Path(metrics_dir) / f"{stage}.json"
        if path.is_file():
            try:
                data = read_json(path)
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"{path}: not valid JSON") from None
            metrics[stage] = data if isinstance(data, dict) else {}
    return CardInputs([], rejects, metrics, read_yaml_mapping(params, missing_ok=True))


def read_inputs(
    instructions: Path | str, rejects_dir: Path | str, metrics_dir: Path | str, params: Path | str
) -> CardInputs:
    """The instructions (an absent file is an :class:`InputError`), and whichever rejects,
    metrics and params files exist, all in memory."""
    rows = list(iter_rows(instructions))
    context = read_context(rejects_dir, metrics_dir, params)
    return CardInputs(rows, context.rejects, context.metrics, context.params)


# --------------------------------------------------------------------------- statistics


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def host(link: str) -> str:
    """The host of a link, lower case, without ``www.``, with its port unless it is the
    scheme's default ("(no host)" when it has none)."""
    try:
        parts = urlsplit(link)
        name, port = parts.hostname or "", parts.port
    except ValueError:
        name, port = "", None
    name = name.removeprefix("www.")
    if name and port and port != {"http": 80, "https": 443}.get(parts.scheme):
        name = f"{name}:{port}"
    return name or "(no host)"


def lengths(values: list[int]) -> dict[str, float | int | None]:
    """min / median / p90 (nearest rank) / max of character counts."""
    if not values:
        return {"min": None, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"min": ordered[0], "median": statistics.median(ordered), "p90": p90, "max": ordered[-1]}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        inner = sorted({_type_name(v) for v in value if v is not None})
        return f"list[{'|'.join(inner) or 'string'}]"
    return {str: "string", int: "int", float: "float", dict: "object"}.get(type(value), "null")


def _column_types(types: dict[str, set[str]], row: dict[str, Any]) -> None:
    for key, value in row.items():
        types.setdefault(key, set())
        if value is not None:
            types[key].add(_type_name(value))


def columns(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(column, type) for every column of the rows, in first-seen order."""
    types: dict[str, set[str]] = {}
    for row in rows:
        _column_types(types, row)
    return [(k, "|".join(sorted(t)) or "null") for k, t in types.items()]


def _grounding(kinds: list[str], n_sources: int) -> str:
    if not n_sources:
        return "no sources"
    if "page" in kinds and "snippet" in kinds:
        return "pages and snippets"
    if "page" in kinds:
        return "pages only"
    if "snippet" in kinds:
        return "snippets only"
    return "kind not recorded"


def _reasons(rejects: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(_str(r.get("reason")).strip() or "(no reason given)" for r in rejects)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = ranked[TOP_REASONS:]
    return {
        "total": len(rejects),
        "reasons": ranked[:TOP_REASONS],
        "other": sum(n for _, n in rest),
        "other_reasons": len(rest),
    }


def _counts(value: Any) -> dict[str, int]:
    """A {name: count} dict from metrics, ignoring anything that is not one."""
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


UNKNOWN = "(unknown)"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    """Sort key: most first, then by name."""
    return -item[1], item[0]


def question_sources(
    rows: Iterable[dict[str, Any]],
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
    """(source, rows, eval rows) per ``question_source``, and (post category, rows) of the
    ``titles`` rows, most rows first (a row without one counts as "(unknown)")."""
    tally = Tally()
    for row in rows:
        tally.add(row)
    return tally.question_sources()


def _cut(row: dict[str, Any]) -> dict[str, Any]:
    """A row for the card's example: long texts cut."""
    cut = {k: (v[:300] + "…" if isinstance(v, str) and len(v) > 300 else v) for k, v in row.items()}
    if isinstance(cut.get("passages"), list):
        cut["passages"] = [
            p[:200] + "…" if isinstance(p, str) and len(p) > 200 else p for p in cut["passages"]
        ]
    return cut


class Tally:
    """The statistics of the rows, taken one row at a time (:meth:`add`, or :meth:`feed`
    on the way to another consumer), so the card stage reads the rows once and never holds
    them: what stays is counters, lengths, the distinct questions and links, and the few
    candidate example rows (cut)."""

    def __init__(self) -> None:
        self.rows = 0
        self.questions: set[str] = set()
        self.splits: Counter[str] = Counter()
        self.rows_per: Counter[str] = Counter()
        self.eval_per: Counter[str] = Counter()
        self.posts: Counter[str] = Counter()
        self.q_lengths: list[int] = []
        self.a_lengths: list[int] = []
        self.citations: Counter[str] = Counter()
        self.cat_links: dict[str, set[str]] = {}
        self.host_cites: Counter[str] = Counter()
        self.host_links: dict[str, set[str]] = {}
        self.kinds: Counter[str] = Counter()
        self.grounding: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.templates: Counter[str] = Counter()
        self.types: dict[str, set[str]] = {}
        # personal data the masking missed, per kind, in any text of any row: the card says
        # so, and `seedtune publish` refuses a dataset where it counts any
        self.unmasked: Counter[str] = Counter()
        # the example: the first train titles row, else the first train row, else (no
        # train rows) the first titles row, else the first row
        self.examples: dict[str, dict[str, Any]] = {}

    def feed(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``rows`` again, each counted as it passes."""
        for row in rows:
            self.add(row)
            yield row

    def add(self, row: dict[str, Any]) -> None:
        """Count one row."""
        self.rows += 1
        question, split = _str(row.get("question")), _str(row.get("split"))
        self.questions.add(question)
        self.splits[split or "(none)"] += 1
        source = _str(row.get("question_source")) or UNKNOWN
        self.rows_per[source] += 1
        self.eval_per[source] += int(row.get("split") == "eval")
        if source == "titles":
            self.posts[_str(row.get("post_category")) or UNKNOWN] += 1
        self.q_lengths.append(len(question))
        self.a_lengths.append(len(_str(row.get("answer"))))
        self._sources(row)
        self.models[_str(row.get("model")) or "(none)"] += 1
        self.templates[_str(row.get("template")) or "(none)"] += 1
        _column_types(self.types, row)
        self.unmasked.update(pii.unmasked_in_row(row))
        train, titles = split == "train", row.get("question_source") == "titles"
        for key, wanted in (
            ("train titles", train and titles),
            ("train", train),
            ("titles", titles),
            ("any", True),
        ):
            if wanted and key not in self.examples:
                self.examples[key] = _cut(row)

    def _sources(self, row: dict[str, Any]) -> None:
        sources = [_str(s) for s in _list(row.get("sources"))]
        cats = _list(row.get("source_categories"))
        row_kinds = [_str(k) for k in _list(row.get("source_kinds"))]
        for i, link in enumerate(sources):
            cat = _str(cats[i]) if i < len(cats) else ""
            cat = cat or "(unknown)"
            self.citations[cat] += 1
            self.cat_links.setdefault(cat, set()).add(link)
            h = host(link)
            self.host_cites[h] += 1
            self.host_links.setdefault(h, set()).add(link)
            kind = row_kinds[i] if i < len(row_kinds) and row_kinds[i] else "(unknown)"
            self.kinds[kind] += 1
        self.grounding[_grounding(row_kinds, len(sources))] += 1

    def question_sources(self) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
        """See :func:`question_sources`."""
        return (
            [(k, n, self.eval_per[k]) for k, n in sorted(self.rows_per.items(), key=_by_count)],
            sorted(self.posts.items(), key=_by_count),
        )

    def example(self) -> dict[str, Any] | None:
        """The row the card shows as its example (cut), None without rows."""
        for key in ("train titles", "train", "titles", "any"):
            if key in self.examples and (key != "titles" or "train" not in self.examples):
                return self.examples[key]
        return None

    def statistics(
        self, metrics: dict[str, dict[str, Any]], rejects: dict[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        """See :func:`dataset_statistics`."""
        per_source, post_categories = self.question_sources()
        kinds = self.kinds
        known = kinds["page"] + kinds["snippet"]
        pii: dict[str, dict[str, int]] = {}
        for stage in PII_STAGES:
            for kind, n in _counts(metrics.get(stage, {}).get("pii_masked")).items():
                pii.setdefault(kind, {})[stage] = int(n)
        cat_links, host_links = self.cat_links, self.host_links
        return {
            "rows": self.rows,
            "questions": len(self.questions),
            "splits": dict(sorted(self.splits.items())),
            "sources": per_source,
            "post_categories": post_categories,
            "length": {"question": lengths(self.q_lengths), "answer": lengths(self.a_lengths)},
            "citations": sum(self.citations.values()),
            "unique_links": len(set().union(*cat_links.values())) if cat_links else 0,
            "categories": [
                (c, n, len(cat_links[c])) for c, n in sorted(self.citations.items(), key=_by_count)
            ],
            "hosts": [
                (h, n, len(host_links[h]))
                for h, n in sorted(self.host_cites.items(), key=_by_count)
            ],
            "kinds": dict(sorted(kinds.items(), key=_by_count)),
            "grounding": dict(sorted(self.grounding.items(), key=_by_count)),
            "pages_share": round(kinds["page"] / known, 4) if known else None,
            "models": sorted(self.models.items(), key=_by_count),
            "templates": sorted(self.templates.items(), key=_by_count),
            "pii": dict(sorted(pii.items())),
            "pii_unmasked": dict(sorted(self.unmasked.items())),
            "rejects": {s: _reasons(r) for s, r in rejects.items()},
            "columns": [(k, "|".join(sorted(t)) or "null") for k, t in self.types.items()],
            "example": self.example(),
        }


def dataset_statistics(inputs: CardInputs) -> dict[str, Any]:
    """Counts, split sizes, rows per question source (and per post category of the titles
    source), sources per category and host, pages vs snippets, lengths, personal data
    masked per kind and stage, rejects by reason per stage, and the example row (cut)."""
    tally = Tally()
    for row in inputs.rows:
        tally.add(row)
    return tally.statistics(inputs.metrics, inputs.rejects)


def card_metrics(stats: dict[str, Any]) -> dict[str, Any]:
    """A few counts for metrics/card.json (``sources``: rows per question source)."""
    return {
        "rows": stats["rows"],
        "train": stats["splits"].get("train", 0),
        "eval": stats["splits"].get("eval", 0),
        "sources": {source: n for source, n, _ in stats["sources"]},
        "unique_links": stats["unique_links"],
        "hosts": len(stats["hosts"]),
        "pages_share": stats["pages_share"],
        "rejects": sum(r["total"] for r in stats["rejects"].values()),
        # {kind: count} found in the rows' text after masking: {} is what may be published
        "pii_unmasked": stats["pii_unmasked"],
    }


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    if n < 1000:
        return "n<1K"
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]
    exp = min(int(math.log10(n)) - 3, len(names) - 2)
    return f"{names[exp]}<n<{names[exp + 1]}"


# --------------------------------------------------------------------------- rendering

LICENSE_NAME = "third-party-web-content"
LICENSE_DETAILS = (
    "No single licence covers this dataset. The passages quote third-party web pages "
    "(blogs, news, Q&A, cafe posts, encyclopedias) and Naver search result snippets; their "
    "text belongs to its authors and publishers. The answers were generated by an LLM from "
    "those passages and may reproduce parts of them. Check each source's terms (and the "
    "LLM provider's terms) before you redistribute or train on it. Personal data found "
    "(phone numbers, e-mail addresses, registration, card, account, licence and passport "
    "numbers) was masked, but automatic masking can miss some."
)


def param(params: dict[str, Any], dotted: str) -> Any:
    """``params['a']['b']`` for ``'a.b'`` (None when any part is absent)."""
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def front_matter(stats: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML metadata, as the Hub reads it."""
    return {
        "language": ["ko"],
        "license": "other",
        "license_name": LICENSE_NAME,
        "license_details": LICENSE_DETAILS,
        "pretty_name": "seedtune grounded Korean instructions",
        "task_categories": ["text-generation"],
        "tags": [
            "synthetic",
            "instruction-tuning",
            "retrieval-augmented-generation",
            "korean",
            "naver-search",
            "seedtune",
        ],
        "annotations_creators": ["machine-generated"],
        "language_creators": ["found", "machine-generated"],
        "multilinguality": ["monolingual"],
        "size_categories": [size_category(stats["rows"])],
        # one file, one Hub split: pointing a train and an eval split at the same file would
        # put every row in both; the rows' own `split` column tells them apart
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": INSTRUCTIONS}]}
        ],
    }


_cell = md_text


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table ("(none)" when there are no rows); every header and cell escaped
    (:func:`md_text`) unless it is :class:`Markdown`."""
    if not rows:
        return "(none)\n"
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _share(n: int, total: int) -> str:
    return f"{n / total:.1%}" if total else "–"


def _fence(text: str) -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}json\n{text}\n{ticks}\n"


def _example(row: dict[str, Any] | None) -> str:
    """The example row (:meth:`Tally.example`: the first train row, a ``titles`` one where
    there is one, so every column of it is filled) as JSON, long texts already cut."""
    if row is None:
        return "(no rows)\n"
    text = json.dumps(row, ensure_ascii=False, indent=2)
    # still the same JSON, but no markup for a renderer that lets HTML through a code block
    return _fence(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _metrics_tables(metrics: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for stage, values in metrics.items():
        scalars = [
            [k, v]
            for k, v in values.items()
            if isinstance(v, int | float | str) and not isinstance(v, bool)
        ]
        if scalars:
            out.append(
                f"**{stage}** (`metrics/{stage}.json`)\n\n" + table(["count", "value"], scalars)
            )
        for key, value in values.items():
            counts = _counts(value)
            if counts and key != "pii_masked":
                out.append(
                    f"**{stage}: {_cell(key)}** (`metrics/{stage}.json`)\n\n"
                    + table([key, "count"], list(counts.items()))
                )
    return out


def render_card(inputs: CardInputs, stats: dict[str, Any]) -> str:
    """The dataset card: YAML front matter, then the README sections."""
    p = inputs.params
    n = stats["rows"]
    splits = stats["splits"]
    meta = yaml.safe_dump(front_matter(stats), allow_unicode=True, sort_keys=False, width=88)
    s: list[str] = [f"---\n{meta}---\n"]
    s.append("# seedtune grounded Korean instructions\n")
    s.append(
        f"{n} Korean question–answer pairs ({splits.get('train', 0)} train, "
        f"{splits.get('eval', 0)} eval) for instruction tuning, each answer written by an "
        f"LLM ({md_code(param(p, 'llm.model'))}) from passages of web pages and Naver search "
        "results it cites. Made by the seedtune DVC pipeline from a list of domain seed "
        "words; every row keeps the passages and links its answer was grounded on.\n"
    )
    s.append("## Loading it\n")
    s.append(
        f"Both splits are in one JSON Lines file, `{INSTRUCTIONS}`, told apart by its "
        "`split` column. Loaded as one file (here, or from the Hub with the `configs` "
        "above) every row is in the one split `datasets` makes: filter on `split`.\n\n"
        "```python\nimport datasets\n\n"
        f'rows = datasets.load_dataset("json", data_files="{INSTRUCTIONS}", '
        'split="train")\n'
        'train = rows.filter(lambda r: r["split"] == "train")\n'
        'eval_ = rows.filter(lambda r: r["split"] == "eval")\n```\n\n'
        '(`split="train"` there is the name `datasets` gives a single file, not this '
        "dataset's split.)\n"
    )
    s.append("## How it was made\n")
    s.append(
        "1. **queries**: questions from two sources, plus any question files "
        "(`question_source` says which: `llm`, `titles`, `user`). An LLM writes questions "
        "for each seed word (`llm`); and real people's Naver cafe and 지식iN post titles "
        "found for each seed word are rewritten as questions by an LLM, which drops "
        "off-topic, unanswerable, unsafe and personal ones (`titles`, with the post's title "
        "and link in `post_title` and `post_link`).\n"
        "2. **search**: each question goes to the Naver Search API; results are cleaned, "
        "deduplicated, and personal data in them is masked.\n"
        "3. **crawl** (where the pipeline has it): the result pages are fetched and passages "
        "cut from them; `source_kinds` says, per passage, whether it came from the page or "
        "from Naver's snippet.\n"
        "4. **rank**: a multilingual e5 encoder keeps the passages closest to the question.\n"
        "5. **synthesize**: an LLM answers each question in Korean from its top passages; "
        "unusable answers (empty, too short, not Korean, refused) are rejected, personal "
        "data is masked again, and a deterministic hash of the question picks the split "
        "(topped up so that every question source has eval questions).\n"
    )
    s.append(
        table(
            ["param", "value"], [[k, param(p, k)] for k in CARD_PARAMS if param(p, k) is not None]
        )
    )
    s.append("\nAnswers per model and prompt template version:\n")
    s.append(table(["model", "rows"], stats["models"]))
    s.append(table(["template", "rows"], stats["templates"]))
    s.append("\n## Fields\n")
    s.append(
        table(
            ["field", "type", "description"],
            [
                [c, t, Markdown(FIELDS.get(c, "(not described: a column this card does not know)"))]
                for c, t in stats["columns"]
            ],
        )
    )
    s.append("\nAn example row (long texts cut here, not in the data):\n")
    s.append(_example(stats["example"]))
    s.append("## Statistics\n")
    s.append(table(["split", "rows"], list(splits.items())))
    s.append("\n### Question sources\n")
    s.append(
        "Rows per `question_source` (`llm`: written by an LLM per seed word; `titles`: "
        "real people's post titles rewritten as questions; `user`: question files):\n\n"
    )
    s.append(
        table(
            ["source", "rows", "share", "eval"],
            [[k, v, _share(v, n), e] for k, v, e in stats["sources"]],
        )
    )
    if stats["post_categories"]:
        n_titles = sum(v for _, v in stats["post_categories"])
        s.append(
            "\n`titles` rows per post category (`cafearticle`: Naver cafe; `kin`: 지식iN):\n\n"
        )
        s.append(
            table(
                ["post category", "rows", "share"],
                [[k, v, _share(v, n_titles)] for k, v in stats["post_categories"]],
            )
        )
    s.append(f"\n{stats['questions']} distinct questions. Lengths in characters:\n")
    s.append(
        table(
            ["field", "min", "median", "p90", "max"],
            [[k, *v.values()] for k, v in stats["length"].items()],
        )
    )
    s.append("\n### Grounding: crawled pages or search snippets\n")
    total_kinds = sum(stats["kinds"].values())
    s.append(
        table(
            ["passage kind", "passages", "share"],
            [[k, v, _share(v, total_kinds)] for k, v in stats["kinds"].items()],
        )
    )
    s.append("\nAnswers by what they were grounded on:\n")
    s.append(
        table(
            ["grounded on", "answers", "share"],
            [[k, v, _share(v, n)] for k, v in stats["grounding"].items()],
        )
    )
    if inputs.metrics:
        s.append("\n### Pipeline counts\n")
        s.append("\n".join(_metrics_tables(inputs.metrics)))
    s.append("\n## Sources\n")
    s.append(
        f"{stats['citations']} citations of {stats['unique_links']} distinct links on "
        f"{len(stats['hosts'])} hosts.\n\n"
    )
    s.append(table(["category", "citations", "distinct links"], stats["categories"]))
    s.append(f"\nTop {TOP_HOSTS} hosts:\n\n")
    hosts = stats["hosts"]
    rest = hosts[TOP_HOSTS:]
    s.append(
        table(
            ["host", "citations", "distinct links"],
            hosts[:TOP_HOSTS]
            + (
                [[f"other ({len(rest)} hosts)", sum(h[1] for h in rest), sum(h[2] for h in rest)]]
                if rest
                else []
            ),
        )
    )
    s.append("\n## Personal data\n")
    s.append(
        "Phone numbers, e-mail addresses, resident and alien registration numbers, card "
        "numbers, bank account numbers next to a bank word, driver's licence and passport "
        "numbers are replaced by tags (`[전화번호]`, `[이메일]`, ...) where search results "
        "and crawled pages enter the pipeline, and synthesized answers are checked again. "
        "Prices, dates, areas, lot and unit numbers are kept. Masked, per kind and stage:"
        "\n\n"
    )
    pii_stages = [st for st in PII_STAGES if any(st in v for v in stats["pii"].values())]
    s.append(
        table(
            ["kind", "tag", *pii_stages, "total"],
            [
                [
                    k,
                    Markdown(TAGS.get(k, "")),
                    *[v.get(st, 0) for st in pii_stages],
                    sum(v.values()),
                ]
                for k, v in stats["pii"].items()
            ],
        )
    )
    missed = stats.get("pii_unmasked") or {}
    s.append(
        "\nLeft unmasked in the rows (a scan of every text field after masking): "
        + (", ".join(f"{n} {k}" for k, n in missed.items()) if missed else "none found")
        + ".\n"
    )
    s.append("\n## Rejects\n")
    s.append(
        f"Items that produced no row, by stage and reason (top {TOP_REASONS} reasons "
        "per stage; from `data/rejects/<stage>.jsonl`):\n\n"
    )
    for stage, r in stats["rejects"].items():
        rows = [list(x) for x in r["reasons"]]
        if r["other"]:
            rows.append([f"other ({r['other_reasons']} reasons)", r["other"]])
        s.append(
            f"**{stage}** (rejects: {r['total']})\n\n" + table(["reason", "count"], rows) + "\n"
        )
    if not stats["rejects"]:
        s.append("(no rejects files)\n")
    s.append("## Licence and caveats\n")
    s.append(LICENSE_DETAILS + "\n\n")
    s.append(
        "- The answers are machine-generated: they can be wrong, outdated or miss nuance, "
        "even where a passage is right. They are not legal, financial or medical advice.\n"
        "- The passages are what a search engine returned for the questions, with its "
        "biases; popular hosts are over-represented (see Sources).\n"
        "- `post_title` quotes real people's post titles and `post_link` points at their "
        "posts; personal data in the titles was masked and the LLM dropped titles that "
        "looked personal, but both can miss some.\n"
        "- `data/instructions.html` (beside this card) shows every row with its passages "
        "and links, and every reject.\n"
    )
    return "\n".join(x.rstrip("\n") + "\n" for x in s).replace("\n\n\n", "\n\n")
