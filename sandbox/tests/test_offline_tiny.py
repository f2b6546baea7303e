"""Tests for the tiny offline stand-ins (seedtune_sandbox.tiny)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from seedtune_sandbox.tiny import (
    LORA_TARGET_MODULES,
    STAMP_NAME,
    TinyModels,
    build_tiny_models,
    corpus_lines,
    gemma_chat_template,
    main,
)

from seedtune.core.text import hangul_share

QUESTION = "전세 계약 시 주의할 점은?"
KOREAN = "전세 계약 전에는 등기부등본을 꼭 확인하세요. 보증금 3억 원, 월세 50만 원! 😀"


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != STAMP_NAME and not p.name.startswith(".tiny-models")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyModels, float]:
    root = tmp_path_factory.mktemp("tiny") / "models"
    started = time.perf_counter()
    paths = build_tiny_models(root)
    return paths, time.perf_counter() - started


@pytest.fixture(scope="module")
def tiny(built: tuple[TinyModels, float]) -> TinyModels:
    return built[0]


@pytest.fixture(scope="module")
def tokenizer(tiny: TinyModels):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny.gemma)


@pytest.fixture(scope="module")
def model(tiny: TinyModels):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny.gemma).eval()


@pytest.fixture(scope="module")
def encoder(tiny: TinyModels):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny.e5), device="cpu")


# ----------------------------------------------------------------------- layout


def test_layout(built: tuple[TinyModels, float]) -> None:
    paths, _ = built
    assert paths.gemma == paths.root / "gemma"
    assert paths.e5 == paths.root / "e5"
    assert (paths.root / STAMP_NAME).is_file()
    assert (paths.gemma / "model.safetensors").is_file()
    assert (paths.e5 / "modules.json").is_file()
    assert not list(paths.root.glob(".tiny-build-*")), "temporary build folder left behind"


# ------------------------------------------------------------------------ gemma


def test_gemma_loads_offline_with_consistent_ids(tiny: TinyModels, tokenizer, model) -> None:
    from transformers import GenerationConfig

    assert tokenizer.is_fast
    assert model.config.model_type == "gemma"
    assert type(model).__name__ == "GemmaForCausalLM"
    assert model.config.vocab_size == len(tokenizer)
    assert 1000 <= len(tokenizer) <= 10000
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token) == (
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
    )
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    assert tokenizer.unk_token_id == 3
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id

    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    sot = tokenizer.convert_tokens_to_ids("<start_of_turn>")
    assert eot != tokenizer.unk_token_id and sot != tokenizer.unk_token_id
    gen = GenerationConfig.from_pretrained(tiny.gemma)
    # as google/gemma-2b-it's generation_config.json: <eos> alone, not <end_of_turn>
    assert gen.eos_token_id == tokenizer.eos_token_id != eot
    assert gen.bos_token_id == tokenizer.bos_token_id
    assert gen.pad_token_id == tokenizer.pad_token_id


def test_tokenizer_adds_bos_and_keeps_turn_markers_whole(tokenizer) -> None:
    ids = tokenizer("안녕하세요")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.eos_token_id not in ids
    tokens = tokenizer.tokenize("<start_of_turn>user\n전세<end_of_turn>\n")
    assert tokens[0] == "<start_of_turn>" and "<end_of_turn>" in tokens


def test_chat_template_matches_gemma_format(tokenizer) -> None:
    assert tokenizer.chat_template == gemma_chat_template()
    messages = [{"role": "user", "content": QUESTION}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == f"<bos><start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"

    convo = messages + [{"role": "assistant", "content": "  등기부등본을 확인하세요.  "}]
    text = tokenizer.apply_chat_template(convo, tokenize=False)
    assert text == (
        f"<bos><start_of_turn>user\n{QUESTION}<end_of_turn>\n"
        "<start_of_turn>model\n등기부등본을 확인하세요.<end_of_turn>\n"
    )

    ids = tokenizer(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
        add_special_tokens=False,
    )["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert (
        tokenizer.decode(ids)
        == text.split("<start_of_turn>model\n등기")[0] + "<start_of_turn>model\n"
    )


def test_chat_template_rejects_system_role(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "친절하게 답하세요."},
        {"role": "user", "content": QUESTION},
    ]
    with pytest.raises(Exception, match="System role not supported"):
        tokenizer.apply_chat_template(messages, tokenize=False)
    with pytest.raises(Exception, match="Conversation roles must alternate"):
        tokenizer.apply_chat_template([{"role": "assistant", "content": "x"}], tokenize=False)


def test_chat_template_resource_is_the_real_gemma_one() -> None:
    template = gemma_chat_template()
    assert template.startswith("{{ bos_token }}")
    assert "raise_exception('System role not supported')" in template
    assert "{% set role = 'model' %}" in template
    assert (
        "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n'"
        in template
    )
    assert template.endswith(
        "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
    )


@pytest.mark.parametrize(
    "text",
    [
        KOREAN,
        QUESTION,
        "재건축 초과이익 환수제와 양도소득세, LTV·DSR 규제",
        "  두 칸  띄어쓰기\n줄바꿈",
    ],
)
def test_korean_round_trip(tokenizer, text: str) -> None:
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.unk_token_id not in ids


def test_korean_is_tokenized_into_pieces_not_bytes(tokenizer) -> None:
    tokens = tokenizer.tokenize(QUESTION)
    assert len(tokens) <= 10
    assert not any(t.startswith("<0x") for t in tokens)


def test_generate_produces_tokens(tokenizer, model) -> None:
    import torch

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=False
    )
    batch = tokenizer(
        [prompt, "짧은 글"], add_special_tokens=False, padding=True, return_tensors="pt"
    )
    assert tokenizer.padding_side == "left"
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    assert isinstance(tokenizer.decode(out[0, batch["input_ids"].shape[1] :]), str)


def test_model_module_names_and_lora(model) -> None:
    from peft import LoraConfig, get_peft_model

    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert set(LORA_TARGET_MODULES) <= leaf_names
    assert LORA_TARGET_MODULES == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]

    import copy

    import torch

    peft_model = get_peft_model(
        copy.deepcopy(model),
        LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGET_MODULES, task_type="CAUSAL_LM"),
    )
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert 0 < trainable < total
    lora_targets = {
        n.split(".lora_A")[0].rsplit(".", 1)[-1]
        for n, _ in peft_model.named_parameters()
        if "lora_A" in n
    }
    assert lora_targets == set(LORA_TARGET_MODULES)
    ids = torch.tensor([[2, 10, 11, 12]])
    loss = peft_model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------- e5


def test_e5_sentence_transformer(encoder) -> None:
    import numpy as np

    texts = [QUESTION, "월세 세액공제를 받으려면 전입신고가 되어 있어야 합니다."]
    query = encoder.encode(texts, prompt_name="query")
    passage = encoder.encode(texts, prompt_name="passage")
    assert query.shape == passage.shape == (2, encoder.get_embedding_dimension())
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(passage, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(query, passage, atol=1e-4)
    assert encoder.prompts["query"] == "query: " and encoder.prompts["passage"] == "passage: "
    assert not np.allclose(query[0], query[1], atol=1e-4)


def test_e5_layout(tiny: TinyModels, encoder) -> None:
    modules = json.loads((tiny.e5 / "modules.json").read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    assert kinds == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((tiny.e5 / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    assert pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens") is True
    tokens = encoder.tokenizer.tokenize("query: " + QUESTION)
    assert encoder.tokenizer.unk_token not in tokens


# ------------------------------------------------------------------------ cache


def test_second_build_is_a_noop(tiny: TinyModels) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny.root.rglob("*")}
    started = time.perf_counter()
    again = build_tiny_models(tiny.root)
    assert time.perf_counter() - started < 1.0
    assert again == tiny
    assert {p: p.stat().st_mtime_ns for p in tiny.root.rglob("*")} == before


def test_main_prints_paths(tiny: TinyModels, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny.root)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(tiny.gemma), str(tiny.e5)]


def test_force_rebuild_is_deterministic(tiny: TinyModels) -> None:
    before = _digest(tiny.root)
    stamp = (tiny.root / STAMP_NAME).read_text(encoding="utf-8")
    old_mtime = (tiny.gemma / "model.safetensors").stat().st_mtime_ns
    time.sleep(0.01)
    build_tiny_models(tiny.root, force=True)
    assert (tiny.gemma / "model.safetensors").stat().st_mtime_ns != old_mtime  # really rebuilt
    assert _digest(tiny.root) == before
    assert (tiny.root / STAMP_NAME).read_text(encoding="utf-8") == stamp


def test_broken_stamp_triggers_rebuild(tmp_path: Path, tiny: TinyModels, monkeypatch) -> None:
    import shutil

    import seedtune_sandbox.tiny as tiny_mod

    root = tmp_path / "copy"
    shutil.copytree(tiny.root, root)
    (root / STAMP_NAME).write_text("{not json", encoding="utf-8")
    calls: list[Path] = []

    def fake_gemma(out: Path, lines: list[str]) -> None:
        calls.append(out)
        shutil.copytree(tiny.gemma, out)

    def fake_e5(out: Path, lines: list[str], scratch: Path) -> None:
        shutil.copytree(tiny.e5, out)

    monkeypatch.setattr(tiny_mod, "_build_gemma", fake_gemma)
    monkeypatch.setattr(tiny_mod, "_build_e5", fake_e5)
    build_tiny_models(root)
    assert len(calls) == 1
    assert json.loads((root / STAMP_NAME).read_text(encoding="utf-8"))["fingerprint"]
    build_tiny_models(root)  # now intact: no second build
    assert len(calls) == 1

    # a build that dies half-way leaves no stamp, so it is not mistaken for complete
    def dying_e5(out: Path, lines: list[str], scratch: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}", encoding="utf-8")
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny_mod, "_build_e5", dying_e5)
    with pytest.raises(RuntimeError, match="boom"):
        build_tiny_models(root, force=True)
    assert (root / STAMP_NAME).is_file()  # the old complete build is untouched
    assert not list(root.glob(".tiny-build-*"))


# ------------------------------------------------------------------------- data


def test_corpus() -> None:
    lines = corpus_lines()
    sentences = [line for line in lines if re.search(r"[.?!]$", line) and hangul_share(line) > 0.8]
    assert len(sentences) >= 300
    syllables = {c for line in lines for c in line if "가" <= c <= "힣"}
    assert len(syllables) >= 500
    for word in ("아파트", "전세", "월세", "청약", "재건축", "대출", "세금", "등기", "계약"):
        assert any(word in line for line in lines), word
