"""Typed, validated views of params.yaml, one model per section.

Stages call :func:`load_params` once, before any work, with the sections they read. A bad
value fails fast with one line naming the key, e.g.
``params.yaml: train.lora.r: must be an integer (got 'abc'); fix conf/ or your -S override``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seedtune.core.errors import ConfigError
from seedtune.core.paths import PARAMS_FILE
from seedtune.core.records import read_yaml_mapping

#: What an environment variable's name looks like (``*_env`` keys hold names, not secrets).
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class Section(BaseModel):
    """One section of params or machine settings: strict and immutable."""

    # extra="forbid": a typo such as `train.lora.rank` is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class LLMConfig(Section):
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = "OPENAI_API_KEY"  # None: the endpoint needs no key
    timeout_s: float = Field(60, gt=0)
    max_retries: int = Field(6, ge=0)
    concurrency: int = Field(16, ge=1)
    max_tokens: int = Field(2048, ge=1)
    max_reject_rate: float = Field(0.2, ge=0, le=1)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    # what the server can do (see seedtune.llm.structured and seedtune.llm.system_role)
    structured_output: Literal["json_schema", "json_object_schema", "json_object", "none"] = (
        "json_schema"
    )
    system_role: Literal["auto", "fold", "keep"] = "auto"
    service_tier: str | None = None  # e.g. OpenAI's "flex"; null: not sent
    # how answers are fetched (see seedtune.llm.batch): one call each, or the Batch API
    mode: Literal["sync", "batch"] = "sync"
    batch_wait_s: float | None = Field(3600, ge=0)  # None: wait for the batches' 24 h
    batch_poll_s: float = Field(30, gt=0)  # seconds between looks at the open batches

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, name: str | None) -> str | None:
        # the value never appears in the message: it may be the key itself
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(
                "must be the NAME of the environment variable that holds the key "
                "(e.g. OPENAI_API_KEY), never the key itself; put the key in the "
                "environment or .env"
            )
        return name


#: Where the files named by ``queries.extra_files`` live: DVC takes no dependency from a list
#: param, so the queries stage depends on this directory instead (see dvc.yaml).
EXTRA_QUESTIONS_DIR = "data/extra_questions"


class TitlesConfig(Section):
    """``queries.titles``: questions from the titles of real people's forum posts."""

    # kin (지식iN) and cafearticle titles are what people asked; blog and news titles are not
    categories: list[Literal["cafearticle", "kin"]] = Field(
        default=["cafearticle", "kin"], min_length=1
    )
    per_seed: int = Field(20, ge=1, le=1000)  # results per seed word and category
    per_prompt: int = Field(20, ge=1, le=100)
    sort: Literal["sim", "date"] = "sim"
    temperature: float = Field(0.2, ge=0, le=2)


class QueriesConfig(Section):
    seed_file: str = "data/seed_words.txt"
    # llm: the LLM writes questions per seed word; titles: forum titles rewritten as questions
    sources: list[Literal["llm", "titles"]] = Field(default=["llm", "titles"], min_length=1)
    titles: TitlesConfig = Field(default_factory=TitlesConfig)
    per_seed: int = Field(20, ge=1, le=200)
    # the tutorial asked for questions ("~인가요?") and instructions ("~알려 주세요") alike
    forms: list[Literal["question", "instruction"]] = Field(
        default=["question", "instruction"], min_length=1
    )
    extra_files: list[str] = []
    temperature: float = Field(0.9, ge=0, le=2)
    min_chars: int = Field(8, ge=1)
    max_chars: int = Field(200, ge=1)
    min_hangul_share: float = Field(0.5, ge=0, le=1)
    # terms: questions with the same key terms are one question (synthesis.dedup); exact:
    # only the same text after normalising
    dedup: Literal["terms", "exact"] = "terms"

    @field_validator("extra_files")
    @classmethod
    def _under_tracked_dir(cls, files: list[str]) -> list[str]:
        for f in files:
            parts = Path(f).parts
            if (
                Path(f).is_absolute()
                or ".." in parts
                or Path(*parts[:2]) != Path(EXTRA_QUESTIONS_DIR)
                or len(parts) < 3
            ):
                raise ValueError(
                    f"{f!r} is not under {EXTRA_QUESTIONS_DIR}/ (the directory the "
                    "queries stage depends on); move the file there"
                )
        return files


SearchCategory = Literal["blog", "news", "kin", "webkr", "cafearticle", "encyc"]


class SearchConfig(Section):
    base_url: str = "https://openapi.naver.com"
    categories: list[SearchCategory] = Field(default=["blog", "news", "kin"], min_length=1)
    display: int = Field(10, ge=1, le=100)
    pages: int = Field(1, ge=1, le=10)
    sort: Literal["sim", "date"] = "sim"
    timeout_s: float = Field(10, gt=0)
    max_retries: int = Field(5, ge=0)
    rps: float = Field(10, gt=0)
    daily_quota: int = Field(25000, ge=1)


class CrawlConfig(Section):
    per_question: int = Field(3, ge=0)
    respect_robots: bool = True
    max_bytes: int = Field(2_000_000, ge=10_000)
    min_chars: int = Field(100, ge=0)
    # machine settings (core.machine)
    user_agent: str = Field(
        "seedtune-crawler/0.1 (+https://github.com/seedtune/seedtune)", min_length=1
    )
    concurrency: int = Field(16, ge=1)
    per_host: int = Field(2, ge=1)
    host_rps: float = Field(1.0, gt=0)
    timeout_s: float = Field(15, gt=0)
    max_retries: int = Field(2, ge=0)
    #: networks (CIDR) or ``host:port`` addresses fetched although private/loopback/reserved
    allow_networks: list[str] = Field(default_factory=list)
    #: a robots.txt Crawl-delay longer than this makes the host's links crawl_delay_too_long
    max_crawl_delay_s: float = Field(10.0, gt=0)


class RankConfig(Section):
    model: str = "intfloat/multilingual-e5-small"
    top_k: int = Field(5, ge=1)
    max_gap: float = Field(0.1, ge=0, le=2)
    passage_tokens: int = Field(256, ge=32)
    passage_overlap: int = Field(32, ge=0)
    prefer_pages: bool = True
    batch_size: int = Field(64, ge=1)
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"


class SynthesizeConfig(Section):
    top_k: int = Field(3, ge=0)
    target_words: int = Field(150, ge=10)
    min_chars: int = Field(20, ge=1)
    min_hangul_share: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(0.3, ge=0, le=2)
    eval_fraction: float = Field(0.05, ge=0, lt=1)
    min_eval: int = Field(4, ge=0)


class ModelConfig(Section):
    """``train.model``: the base causal LM and how it is loaded."""

    name_or_path: str = "google/gemma-2b-it"
    attn_implementation: Literal[
        "auto", "flash_attention_3", "flash_attention_2", "flex_attention", "sdpa", "eager"
    ] = "auto"
    revision: str = "main"
    load_in_4bit: bool = False  # QLoRA (bitsandbytes NF4); CUDA only


class LoraConfigModel(Section):
    r: int = Field(4, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(min_length=1)
    bias: Literal["none", "all", "lora_only"] = "none"


class OptimConfig(Section):
    name: str = "adamw_torch_fused"
    lr: float = Field(1e-4, gt=0)
    scheduler: str = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(0.3, gt=0)


class TrainConfig(Section):
    """``train``: LoRA SFT (mapped onto PEFT/TRL in :mod:`seedtune.training.configure`)."""

    model: ModelConfig
    lora: LoraConfigModel
    optim: OptimConfig
    max_steps: int = Field(-1, ge=-1)
    epochs: float = Field(3, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(2, ge=1)
    max_length: int = Field(1024, ge=16)
    bf16: bool = True
    packing: bool = True
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the model (CUDA); see bench/gpu_train.py
    with_passages: bool = False  # prompts carry the passages, as `seedtune ask --rag` asks
    # off, as conf/ has it: measured slower (bench/gpu_train.py); auto: on with CUDA if installed
    liger_kernel: Literal["auto"] | bool = False
    logging_steps: int = Field(5, ge=1)
    # a whole number of optimizer steps, or below 1 a share of the run's steps (0.1: ten
    # evaluations however large the data). Every 50 steps was about 44 passes over the eval
    # split in a tutorial-sized run (16k examples, 3 epochs), a quarter of its time
    eval_steps: float = 0.1
    save_steps: int = Field(50, ge=1)
    launcher: Literal["python", "accelerate"] = "python"
    num_processes: int = Field(1, ge=1)
    accelerate_config: str = "conf/accelerate/ddp.yaml"

    @field_validator("eval_steps")
    @classmethod
    def _steps_or_share(cls, value: float) -> float:
        """Steps as transformers reads ``eval_steps``: a whole number, or a share below 1."""
        if value >= 1 and value.is_integer():
            return int(value)
        if 0 < value < 1:
            return value
        raise ValueError(
            "must be a whole number of steps (1 or more) or a share of the run "
            "between 0 and 1 (0.1: ten evaluations)"
        )


class EvaluateConfig(Section):
    judge_model: str | None = None
    # a DVC dependency (${evaluate.questions_file} in dvc.yaml), so never null: an empty
    # file means no questions of your own
    questions_file: str = "data/eval_questions.txt"
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    max_questions: int = Field(50, ge=1)
    bootstrap: int = Field(1000, ge=10)


class Price(Section):
    input: float = Field(ge=0)  # USD per 1M prompt tokens
    output: float = Field(ge=0)  # USD per 1M completion tokens
    # the Batch API's prices (OpenAI: half); absent: a batch run is unpriced, never guessed
    batch_input: float | None = Field(None, ge=0)
    batch_output: float | None = Field(None, ge=0)


class Params(BaseModel):
    """The sections of params.yaml; a stage loads only what it reads."""

    # extra="forbid": an unknown section (`+trian.max_steps=3`) is an error too
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 42
    llm: LLMConfig | None = None
    queries: QueriesConfig | None = None
    search: SearchConfig | None = None
    crawl: CrawlConfig | None = None
    rank: RankConfig | None = None
    synthesize: SynthesizeConfig | None = None
    train: TrainConfig | None = None
    evaluate: EvaluateConfig | None = None
    prices: dict[str, Price] = {}

    def price_table(self) -> dict[str, dict[str, float]]:
        """``prices`` as plain dicts for :mod:`seedtune.llm.costs`."""
        return {m: p.model_dump() for m, p in self.prices.items()}


FIX = "fix it under conf/ or in your -S override"


def problems(exc: ValidationError, source_of: Callable[[str], str], prefix: str = "") -> list[str]:
    """One line per validation error: ``<file>: <key>: <what is wrong> (got <value>)``.

    ``source_of(key)`` names the file that set the key; ``prefix`` (e.g. ``"generate."``)
    is put before each key a model of one section reports. A value is never shown for keys
    whose name ends in ``_env`` (they may hold a pasted key) or for unknown keys.
    """
    lines = []
    for err in exc.errors():
        key = prefix + ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (a typo? see conf/ for the keys that exist)"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            msg = msg[0].lower() + msg[1:]
        secret = key.endswith("_env") or err["type"] == "extra_forbidden"
        shown = f" (got {got!r})" if not (secret or isinstance(got, dict | list)) else ""
        lines.append(f"{source_of(key)}: {key}: {msg}{shown}")
    return lines


def validate_params(raw: dict[str, Any], source_of: Callable[[str], str]) -> Params:
    """``raw`` as :class:`Params`; raises :class:`ConfigError` listing every problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = problems(exc, source_of)
        more = f" [+{len(lines) - 1} more]" if len(lines) > 1 else ""
        raise ConfigError(f"{lines[0]}{more}; {FIX}", [f"{x}; {FIX}" for x in lines]) from None


def machine_keys_in(raw: dict[str, Any], source_of: Callable[[str], str]) -> list[str]:
    """One problem line per machine setting found among pipeline params."""
    from seedtune.core.machine import env_name, is_machine_key

    found = ["models"] if "models" in raw else []
    found += [
        f"{section}.{key}"
        for section, values in raw.items()
        if isinstance(values, dict)
        for key in values
        if section != "models" and is_machine_key(f"{section}.{key}")
    ]
    hint = {key: f" (or {env_name(*key.split('.'))})" for key in found if key != "models"}
    return [
        f"{source_of(key)}: {key}: a machine setting, not a pipeline param; set it in "
        f"conf/local/default.yaml{hint.get(key, '')}, not in conf/ or params.yaml"
        for key in found
    ]


def load_params(path: Path | str = PARAMS_FILE, sections: tuple[str, ...] = ()) -> Params:
    """Read ``path`` (pipeline params) and validate ``sections`` (all when empty), with this
    machine's settings merged into them (:mod:`seedtune.core.machine`); raises
    :class:`ConfigError` naming the file and key of every problem."""
    from seedtune.core import machine

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: missing; run `dvc repro compose` (or `seedtune compose`)")
    raw = read_yaml_mapping(path)
    misplaced = machine_keys_in(raw, lambda key: str(path))
    if misplaced:
        raise ConfigError(misplaced[0], misplaced)
    wanted = sections or tuple(n for n in Params.model_fields if n not in ("seed", "prices"))
    missing = [s for s in wanted if s not in raw]
    if missing:
        raise ConfigError(f"{path}: section `{missing[0]}` is missing; recompose from conf/")
    data = {k: raw[k] for k in (*wanted, "seed", "prices") if k in raw}
    root = path.parent
    settings = machine.load_machine(root)
    for section in wanted:
        if section in machine.MACHINE_KEYS and isinstance(data.get(section), dict):
            data[section] = {**data[section], **(settings.get(section) or {})}
    return validate_params(
        data, lambda key: machine.source_of(key, root) if machine.is_machine_key(key) else str(path)
    )
