"""e5 ranking: prefixes, one encode per unique text, relative cut, and the rank stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support import last_line

from seedtune.core.errors import ConfigError
from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
from seedtune.retrieval.rank import (
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    keep_top,
    load_encoder,
    passage_text,
    rank_rows,
)


def _doc(title: str, description: str, category: str = "blog") -> dict[str, Any]:
    return {"category": category, "title": title, "description": description,
            "link": f"https://example.kr/{abs(hash(title + description)) % 10**8}", "date": None}


ROWS = [
    {"question": "전세 계약 전에 등기부등본에서 무엇을 확인해야 하나요?", "documents": [
        _doc("등기부등본 보는 법", "근저당과 가압류가 있는지 갑구와 을구를 확인하세요."),
        _doc("전세 사기 예방", "보증금이 매매가에 가까우면 깡통전세를 의심해야 합니다. "
             "전세보증보험 가입을 검토하세요."),
        _doc("청약 가점", "무주택 기간과 부양가족 수로 가점을 계산합니다.", "news"),
        _doc("", "확정일자와 전입신고는 잔금일에 함께 하세요.", "kin"),
        _doc("재건축 초과이익", "조합원 이익이 기준을 넘으면 부담금이 부과됩니다."),
    ]},
    {"question": "청약 가점은 어떻게 계산하나요?", "documents": [
        _doc("청약 가점", "무주택 기간과 부양가족 수로 가점을 계산합니다.", "news"),  # shared
        _doc("청약 통장", "납입 인정 횟수와 금액을 확인하세요."),
    ]},
    {"question": "검색 결과가 없는 질문입니다?", "documents": []},
]


@pytest.fixture(scope="module")
def encoder(tiny_models) -> Any:
    return load_encoder(str(tiny_models.e5), "cpu")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_scores_are_cosines_of_prefixed_embeddings(tiny_models) -> None:
    from sentence_transformers import SentenceTransformer

    ranked = rank_rows(load_encoder(str(tiny_models.e5), "cpu"), ROWS, top_k=100, max_gap=2.0,
                       batch_size=2)
    independent = SentenceTransformer(str(tiny_models.e5), device="cpu")  # its own instance

    def one(text: str) -> np.ndarray:  # one text at a time: no batching, no padding
        return independent.encode([text], convert_to_numpy=True)[0].astype(np.float64)

    differs = 0
    for row in ranked:
        q = one(QUERY_PREFIX + row["question"])
        for doc in row["documents"]:
            expected = _cos(q, one(PASSAGE_PREFIX + doc["passage"]))
            assert doc["score"] == pytest.approx(expected, abs=1e-5)
            unprefixed = _cos(one(row["question"]), one(doc["passage"]))
            differs += abs(unprefixed - doc["score"]) > 1e-3
    assert differs >= 3  # the prefixes matter, and were used


def test_ranked_rows_keep_fields_sorted_with_passage_and_score(encoder) -> None:
    ranked = rank_rows(encoder, ROWS, top_k=100, max_gap=2.0)
    assert [r["question"] for r in ranked] == [r["question"] for r in ROWS]
    assert ranked[2]["documents"] == []  # kept, with an empty list
    first = ranked[0]["documents"]
    assert len(first) == 5
    assert [d["score"] for d in first] == sorted((d["score"] for d in first), reverse=True)
    for doc in first:
        assert doc["passage"] == passage_text(doc) and not doc["passage"].startswith("passage:")
        assert {"category", "title", "description", "link", "date", "kind", "passage",
                "score"} == set(doc) and doc["kind"] == "snippet"
    assert any(d["passage"] == "확정일자와 전입신고는 잔금일에 함께 하세요." for d in first)


def test_crawled_pages_are_ranked_as_passages_that_fit_the_encoder(encoder) -> None:
    """A document whose page was crawled is ranked by its page's passages (each short
    enough that e5 reads ``passage: `` + it whole, as its 512-token limit requires); the
    others keep their snippet."""
    from seedtune.retrieval.passages import page_passages, token_counter

    page = "\n".join(f"{i}번째 문단: 전세 계약 전에 등기부등본 을구에서 근저당 채권최고액을 "
                      f"확인하고, 선순위 보증금이 시세의 몇 퍼센트인지 계산해 보세요."
                      for i in range(40))
    doc = ROWS[0]["documents"][0]
    pages = page_passages([{"link": doc["link"], "status": "ok", "text": page},
                           {"link": "https://example.kr/404", "status": "http_404"}],
                          encoder, passage_tokens=64, overlap=16)
    assert list(pages) == [doc["link"]] and len(pages[doc["link"]]) > 5
    count = token_counter(encoder)
    assert max(count([PASSAGE_PREFIX + p for p in pages[doc["link"]]])) <= 64 + 4
    ranked = rank_rows(encoder, ROWS[:1], top_k=100, max_gap=2.0, pages=pages)[0]["documents"]
    from_page = [d for d in ranked if d["kind"] == "page"]
    assert {d["passage"] for d in from_page} == set(pages[doc["link"]])
    assert all(d["link"] == doc["link"] and d["title"] == doc["title"] for d in from_page)
    assert passage_text(doc) not in {d["passage"] for d in ranked}  # its snippet is replaced
    assert sum(d["kind"] == "snippet" for d in ranked) == 4
    assert [d["kind"] for d in ranked] == ["page"] * len(from_page) + ["snippet"] * 4
    mixed = rank_rows(encoder, ROWS[:1], top_k=100, max_gap=2.0, pages=pages,
                      prefer_pages=False)[0]["documents"]
    assert [d["score"] for d in mixed] == sorted((d["score"] for d in mixed), reverse=True)


def test_pages_take_the_slots_first_and_snippets_fill_the_rest() -> None:
    from seedtune.retrieval.rank import keep_pages_first

    scored = [{"kind": "snippet", "score": 0.95}, {"kind": "page", "score": 0.90},
              {"kind": "snippet", "score": 0.93}, {"kind": "page", "score": 0.70},
              {"kind": "page", "score": 0.88}]
    assert [(d["kind"], d["score"]) for d in keep_pages_first(scored, 4, 0.1)] == [
        ("page", 0.90), ("page", 0.88), ("snippet", 0.95), ("snippet", 0.93)]  # 0.70: cut
    assert [d["score"] for d in keep_pages_first(scored, 2, 0.1)] == [0.90, 0.88]
    no_pages = [d for d in scored if d["kind"] == "snippet"]
    assert keep_pages_first(no_pages, 3, 0.1) == keep_top(no_pages, 3, 0.1)
    # a page passage far below the best snippet (a login wall) is cut, not put first
    junk = [{"kind": "snippet", "score": 0.90}, {"kind": "page", "score": 0.70}]
    assert keep_pages_first(junk, 2, 0.1) == [junk[0]]


class Spy:
    """Wraps an encoder and records the texts of each encode call."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, []
        self.tokenizer, self.max_seq_length = model.tokenizer, model.max_seq_length

    def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
        self.calls.append(list(texts))
        return self.model.encode(texts, **kw)


def test_every_unique_text_is_encoded_once_in_length_sorted_batches(encoder) -> None:
    spy = Spy(encoder)
    rows = ROWS * 3  # repeated questions and passages cost nothing more
    ranked = rank_rows(spy, rows, top_k=3, max_gap=2.0, batch_size=2)
    assert len(ranked) == len(rows)
    sent = [t for call in spy.calls for t in call]
    passages = [t for t in sent if t.startswith(PASSAGE_PREFIX)]
    queries = [t for t in sent if t.startswith(QUERY_PREFIX)]
    assert len(passages) + len(queries) == len(sent)
    unique = {passage_text(d) for r in ROWS for d in r["documents"]}
    assert sorted(passages) == sorted(PASSAGE_PREFIX + p for p in unique)
    assert sorted(queries) == sorted(QUERY_PREFIX + r["question"] for r in ROWS)
    assert all(len(call) <= 2 for call in spy.calls)
    lengths = [len(encoder.tokenizer(t)["input_ids"]) for t in passages]
    assert lengths == sorted(lengths, reverse=True)


def test_stored_embeddings_are_reused_and_survive_a_crash(encoder, tmp_path) -> None:
    fingerprint = encoder_fingerprint(encoder)
    fresh = rank_rows(encoder, ROWS, top_k=100, max_gap=2.0, batch_size=2)

    class Crash(Spy):  # dies on its fourth batch, like a kill mid-run
        def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
            if len(self.calls) == 3:
                raise KeyboardInterrupt
            return super().encode(texts, **kw)

    crashing = Crash(encoder)
    with pytest.raises(KeyboardInterrupt):
        rank_rows(crashing, ROWS, top_k=100, max_gap=2.0, batch_size=2,
                  store=EmbeddingStore(tmp_path, fingerprint, flush_every=2))
    done = [t for call in crashing.calls for t in call]  # the three batches that finished

    spy = Spy(encoder)
    store = EmbeddingStore(tmp_path, fingerprint)
    assert len(store) == len(done)
    resumed = rank_rows(spy, ROWS, top_k=100, max_gap=2.0, batch_size=2, store=store)
    sent = [t for call in spy.calls for t in call]
    assert not set(sent) & set(done)  # nothing finished before the crash is encoded again
    assert store.reused == len(done) and store.encoded == len(sent)
    for a, b in zip(resumed, fresh, strict=True):
        assert [d["passage"] for d in a["documents"]] == [d["passage"] for d in b["documents"]]
        assert [d["score"] for d in a["documents"]] == pytest.approx(
            [d["score"] for d in b["documents"]], abs=1e-6)

    spy = Spy(encoder)
    rank_rows(spy, ROWS, top_k=100, max_gap=2.0, store=EmbeddingStore(tmp_path, fingerprint))
    assert spy.calls == []  # everything stored: not one encode


def test_another_encoder_does_not_get_stored_embeddings(tiny_models, encoder, tmp_path) -> None:
    import torch

    other = load_encoder(str(tiny_models.e5), "cpu")
    assert encoder_fingerprint(other) == encoder_fingerprint(encoder)  # same model, same store
    with torch.no_grad():
        next(other.parameters()).mul_(1.01)  # slightly different weights
    assert encoder_fingerprint(other) != encoder_fingerprint(encoder)
    other.max_seq_length = 16  # truncates long texts, which the probes cannot show
    assert encoder_fingerprint(other) != encoder_fingerprint(encoder)


def test_a_damaged_shard_is_ignored_and_its_texts_encoded_again(encoder, tmp_path) -> None:
    fingerprint = encoder_fingerprint(encoder)
    rank_rows(encoder, ROWS, top_k=3, max_gap=2.0, store=EmbeddingStore(tmp_path, fingerprint))
    shards = sorted((tmp_path / fingerprint).glob("*.npz"))
    assert shards
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[:100])  # e.g. half-pulled files
    spy = Spy(encoder)
    store = EmbeddingStore(tmp_path, fingerprint)
    assert len(store) == 0
    rank_rows(spy, ROWS, top_k=3, max_gap=2.0, store=store)
    assert store.encoded == len([t for call in spy.calls for t in call]) > 0


def test_relative_cut_and_top_k() -> None:
    scored = [{"id": i, "score": s} for i, s in enumerate([0.81, 0.93, 0.88, 0.84, 0.93, 0.70])]
    assert [d["id"] for d in keep_top(scored, 5, 0.1)] == [1, 4, 2, 3]
    assert [d["id"] for d in keep_top(scored, 2, 0.1)] == [1, 4]  # ties keep search order
    assert [d["id"] for d in keep_top(scored, 10, 0.0)] == [1, 4]
    assert len(keep_top(scored, 10, 2.0)) == 6 and keep_top([], 5, 0.1) == []


def test_unloadable_model_names_rank_model(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^rank\.model: cannot load"):
        load_encoder(str(tmp_path / "no-such-model"), "cpu")


# --------------------------------------------------------------------------- stage


def test_rank_stage_writes_ranked_rows_and_metrics(tiny_models, workspace) -> None:
    rank = {"model": str(tiny_models.e5), "top_k": 2, "max_gap": 0.5, "batch_size": 4,
            "device": "cpu"}
    ws = workspace.params(rank=rank)
    ws.write("data/documents.jsonl", ROWS)
    proc = ws.run("rank")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranked = ws.rows("data/ranked.jsonl")
    assert [len(r["documents"]) for r in ranked][1:] == [2, 0]
    assert all(len(r["documents"]) <= 2 for r in ranked)
    metrics = ws.metrics("rank")
    assert metrics["questions"] == 3 and metrics["with_passages"] == 2
    top = [r["documents"][0]["score"] for r in ranked if r["documents"]]
    assert metrics["mean_top_score"] == pytest.approx(sum(top) / 2)
    texts = len({r["question"] for r in ROWS}) + len(
        {passage_text(d) for r in ROWS for d in r["documents"]})
    assert (metrics["encoded"], metrics["reused"]) == (texts, 0)

    # a new top_k reruns the stage: nothing is encoded again, the scores are the same
    ws.params(rank={**rank, "top_k": 5})
    proc = ws.run("rank")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = ws.metrics("rank")
    assert (metrics["encoded"], metrics["reused"]) == (0, texts)
    assert ws.rows("data/ranked.jsonl")[0]["documents"][:2] == ranked[0]["documents"]


def test_rank_stage_bad_input_is_one_line(workspace) -> None:
    ws = workspace.params(rank={"top_k": 0})
    proc = ws.run("rank")
    assert proc.returncode == 2
    assert last_line(proc.stderr).startswith(
        "rank: error: params.yaml: rank.top_k: input should be greater than or equal to 1")
    ws.params(rank={"device": "cpu"})
    ws.write("data/documents.jsonl", '{"question": "q"}\n')
    proc = ws.run("rank")
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (
        "rank: error: data/documents.jsonl: row 1 is not {question: str, documents: [...]}")
