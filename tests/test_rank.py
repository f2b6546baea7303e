"""e5 ranking: prefixes, one encode per unique text, relative cut, chunked streaming, the
embedding store on disk, pages by link, and the rank stage."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import jsonl, last_line

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
    return {
        "category": category,
        "title": title,
        "description": description,
        "link": f"https://example.kr/{abs(hash(title + description)) % 10**8}",
        "date": None,
    }


ROWS = [
    {
        "question": "전세 계약 전에 등기부등본에서 무엇을 확인해야 하나요?",
        "documents": [
            _doc("등기부등본 보는 법", "근저당과 가압류가 있는지 갑구와 을구를 확인하세요."),
            _doc(
                "전세 사기 예방",
                "보증금이 매매가에 가까우면 깡통전세를 의심해야 합니다. "
                "전세보증보험 가입을 검토하세요.",
            ),
            _doc("청약 가점", "무주택 기간과 부양가족 수로 가점을 계산합니다.", "news"),
            _doc("", "확정일자와 전입신고는 잔금일에 함께 하세요.", "kin"),
            _doc("재건축 초과이익", "조합원 이익이 기준을 넘으면 부담금이 부과됩니다."),
        ],
    },
    {
        "question": "청약 가점은 어떻게 계산하나요?",
        "documents": [
            _doc("청약 가점", "무주택 기간과 부양가족 수로 가점을 계산합니다.", "news"),  # shared
            _doc("청약 통장", "납입 인정 횟수와 금액을 확인하세요."),
        ],
    },
    {"question": "검색 결과가 없는 질문입니다?", "documents": []},
]


@pytest.fixture(scope="module")
def encoder(tiny_models) -> Any:
    return load_encoder(str(tiny_models.e5), "cpu")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_scores_are_cosines_of_prefixed_embeddings(tiny_models) -> None:
    from sentence_transformers import SentenceTransformer

    ranked = rank_rows(
        load_encoder(str(tiny_models.e5), "cpu"), ROWS, top_k=100, max_gap=2.0, batch_size=2
    )
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
        assert {
            "category",
            "title",
            "description",
            "link",
            "date",
            "kind",
            "passage",
            "score",
        } == set(doc) and doc["kind"] == "snippet"
    assert any(d["passage"] == "확정일자와 전입신고는 잔금일에 함께 하세요." for d in first)


def test_crawled_pages_are_ranked_as_passages_that_fit_the_encoder(encoder) -> None:
    """A document whose page was crawled is ranked by its page's passages (each short
    enough that e5 reads ``passage: `` + it whole, as its 512-token limit requires); the
    others keep their snippet."""
    from seedtune.retrieval.passages import page_passages, token_counter

    page = "\n".join(
        f"{i}번째 문단: 전세 계약 전에 등기부등본 을구에서 근저당 채권최고액을 "
        f"확인하고, 선순위 보증금이 시세의 몇 퍼센트인지 계산해 보세요."
        for i in range(40)
    )
    doc = ROWS[0]["documents"][0]
    pages = page_passages(
        [
            {"link": doc["link"], "status": "ok", "text": page},
            {"link": "https://example.kr/404", "status": "http_404"},
        ],
        encoder,
        passage_tokens=64,
        overlap=16,
    )
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
    mixed = rank_rows(encoder, ROWS[:1], top_k=100, max_gap=2.0, pages=pages, prefer_pages=False)[
        0
    ]["documents"]
    assert [d["score"] for d in mixed] == sorted((d["score"] for d in mixed), reverse=True)


def test_pages_take_the_slots_first_and_snippets_fill_the_rest() -> None:
    from seedtune.retrieval.rank import keep_pages_first

    scored = [
        {"kind": "snippet", "score": 0.95},
        {"kind": "page", "score": 0.90},
        {"kind": "snippet", "score": 0.93},
        {"kind": "page", "score": 0.70},
        {"kind": "page", "score": 0.88},
    ]
    assert [(d["kind"], d["score"]) for d in keep_pages_first(scored, 4, 0.1)] == [
        ("page", 0.90),
        ("page", 0.88),
        ("snippet", 0.95),
        ("snippet", 0.93),
    ]  # 0.70: cut
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
        rank_rows(
            crashing,
            ROWS,
            top_k=100,
            max_gap=2.0,
            batch_size=2,
            store=EmbeddingStore(tmp_path, fingerprint, flush_every=2),
        )
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
            [d["score"] for d in b["documents"]], abs=1e-6
        )

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


def test_relative_cut_and_top_k() -> None:
    scored = [{"id": i, "score": s} for i, s in enumerate([0.81, 0.93, 0.88, 0.84, 0.93, 0.70])]
    assert [d["id"] for d in keep_top(scored, 5, 0.1)] == [1, 4, 2, 3]
    assert [d["id"] for d in keep_top(scored, 2, 0.1)] == [1, 4]  # ties keep search order
    assert [d["id"] for d in keep_top(scored, 10, 0.0)] == [1, 4]
    assert len(keep_top(scored, 10, 2.0)) == 6 and keep_top([], 5, 0.1) == []


def test_unloadable_model_names_rank_model(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^params\.yaml: rank\.model=.*: no such directory"):
        load_encoder(str(tmp_path / "no-such-model"), "cpu")


# ------------------------------------------------------------------ chunked streaming


def _page_text(i: int) -> str:
    return "\n".join(
        f"{i}번 페이지의 {j}번째 문단: 전세 보증금 {i * 100 + j}만 원을 지키려면 "
        f"등기부등본 을구에서 근저당 채권최고액을 확인하세요."
        for j in range(6)
    )


def _corpus(
    n_questions: int = 9, pool: int = 6
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Questions whose documents share a pool of pages (as search results about one seed
    word do), so pages recur across chunks; some questions recur too."""
    links = [f"https://example.kr/page/{i}" for i in range(pool)]
    pages: list[dict[str, Any]] = [
        {"link": link, "status": "ok", "text": _page_text(i)} for i, link in enumerate(links)
    ]
    pages[1] = {"link": links[1], "status": "http_404", "text": ""}  # no page: its snippet
    pages.append({"link": links[2], "status": "ok", "text": _page_text(99)})  # crawled twice
    pages.append({"link": links[3], "status": "timeout"})  # a later failure hides nothing
    rows = []
    for q in range(n_questions):
        docs = [
            {**_doc(f"문서 {k}", f"{k}번 문서 요약: 전세 계약 주의점 {k}"), "link": links[k]}
            for k in ((q + j) % pool for j in range(3))
        ]
        rows.append(
            {"question": f"전세 계약 {q % 7}번 질문: 무엇을 확인하나요?", "documents": docs}
        )
    rows.append({"question": "문서가 없는 질문입니다?", "documents": []})
    return rows, pages


def _same_ranking(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Same rows, documents and passages in the same order; scores equal to float noise."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x["question"] == y["question"]
        assert [{k: v for k, v in d.items() if k != "score"} for d in x["documents"]] == [
            {k: v for k, v in d.items() if k != "score"} for d in y["documents"]
        ]
        assert [d["score"] for d in x["documents"]] == pytest.approx(
            [d["score"] for d in y["documents"]], abs=1e-6
        )


def test_chunked_ranking_equals_all_at_once_and_encodes_each_text_once(encoder, tmp_path) -> None:
    from seedtune.retrieval.page_index import PageIndex
    from seedtune.retrieval.passages import PagePassages, page_passages
    from seedtune.retrieval.rank import rank_stream

    rows, pages = _corpus()
    (tmp_path / "pages.jsonl").write_text(jsonl(pages), encoding="utf-8")
    at_once = rank_rows(
        encoder,
        rows,
        top_k=100,
        max_gap=2.0,
        batch_size=3,
        pages=page_passages(pages, encoder, 24, 8),
    )
    fingerprint = encoder_fingerprint(encoder)

    def chunked(spy: Spy) -> tuple[list[dict[str, Any]], EmbeddingStore]:
        store = EmbeddingStore(tmp_path / "store", fingerprint, flush_every=5)
        with PageIndex(tmp_path / "pages.jsonl") as index:
            # a page cache of 2 pages: pages are split again when they come back
            lookup = PagePassages(index, encoder, 24, 8, cache_pages=2)
            out = list(
                rank_stream(
                    spy,
                    iter(rows),
                    top_k=100,
                    max_gap=2.0,
                    batch_size=3,
                    store=store,
                    pages=lookup,
                    chunk=2,
                )
            )
        return out, store

    spy = Spy(encoder)
    first, store = chunked(spy)
    _same_ranking(first, at_once)
    kinds = {d["link"]: d["kind"] for r in first for d in r["documents"]}
    assert (
        kinds["https://example.kr/page/1"] == "snippet"
        and kinds["https://example.kr/page/0"] == "page"
    )
    passages = {d["passage"] for r in first for d in r["documents"]}
    assert any(p.startswith("99번 페이지") for p in passages)  # the last crawl of page 2 wins
    assert not any(p.startswith("2번 페이지") for p in passages)
    sent = [t for call in spy.calls for t in call]
    assert len(sent) == len(set(sent))  # a text shared by chunks is encoded once
    assert all(len(call) <= 3 for call in spy.calls)
    assert (store.encoded, store.reused) == (len(sent), 0)

    spy = Spy(encoder)
    again, store = chunked(spy)  # a rerun: everything stored, not one encode
    assert spy.calls == [] and (store.encoded, store.reused) == (0, len(sent))
    _same_ranking(again, at_once)


def test_metrics_accumulate_as_over_all_rows(encoder) -> None:
    from seedtune.retrieval.rank import RankMetrics, rank_metrics

    ranked = rank_rows(encoder, ROWS, top_k=3, max_gap=2.0)
    metrics = RankMetrics()
    for row in ranked:
        metrics.add(row)
    assert metrics.result() == rank_metrics(ranked)
    assert metrics.result()["questions"] == 3 and metrics.result()["without_passages"] == 1


# ------------------------------------------------------------------ the embedding store


def test_store_round_trip_and_reuse_across_runs(tmp_path) -> None:
    vecs = np.random.default_rng(0).standard_normal((23, 16)).astype(np.float32)
    texts = [f"passage: 문단 {i}" for i in range(23)]
    with EmbeddingStore(tmp_path, "fp", flush_every=10) as store:
        store.add(texts[:12], vecs[:12])  # 12 >= 10: written as a shard
        store.add(texts[12:], vecs[12:])
        np.testing.assert_array_equal(store.get(texts[0]), vecs[0])
        assert store.encoded == 23 and store.reused == 0  # its own vectors are not "reused"
    assert len(list((tmp_path / "fp").glob("*.emb"))) == 2
    again = EmbeddingStore(tmp_path, "fp")
    assert len(again) == 23
    got = again.lookup([*texts, "passage: 처음 보는 문단"])
    np.testing.assert_array_equal(np.stack(got[:23]), vecs)
    assert got[23] is None
    again.lookup(texts[:5])
    assert (again.reused, again.encoded) == (23, 0)  # distinct texts, counted once


def test_small_shards_are_merged_when_closed(tmp_path) -> None:
    from seedtune.retrieval.embeddings import MERGE_FANOUT

    rng = np.random.default_rng(1)
    stored = {}
    for run in range(MERGE_FANOUT):  # each run leaves one small shard
        with EmbeddingStore(tmp_path, "fp", flush_every=100) as store:
            texts = [f"query: {run}-{i}" for i in range(3)]
            vecs = rng.standard_normal((3, 8)).astype(np.float32)
            store.add(texts, vecs)
            stored.update(zip(texts, vecs, strict=True))
        shards = list((tmp_path / "fp").glob("*.emb"))
        assert len(shards) == (run + 1 if run + 1 < MERGE_FANOUT else 1)
    store = EmbeddingStore(tmp_path, "fp")
    assert len(store) == len(stored)
    for text, vec in stored.items():
        np.testing.assert_array_equal(store.get(text), vec)
    assert not list((tmp_path / "fp").glob(".*"))  # no temp file left


def _shard_count(shard: Path) -> int:
    from seedtune.retrieval.embeddings import FOOTER

    return FOOTER.unpack(shard.read_bytes()[-FOOTER.size :])[2]


@pytest.mark.parametrize("damage", ["vector", "keys", "truncated", "garbled"])
def test_a_damaged_shard_is_a_logged_miss_encoded_again(encoder, tmp_path, caplog, damage) -> None:
    from seedtune.retrieval.embeddings import FOOTER

    fingerprint = encoder_fingerprint(encoder)
    fresh = rank_rows(encoder, ROWS, top_k=100, max_gap=2.0)
    rank_rows(
        encoder,
        ROWS,
        top_k=100,
        max_gap=2.0,
        batch_size=2,
        store=EmbeddingStore(tmp_path, fingerprint, flush_every=4),
    )
    shards = sorted((tmp_path / fingerprint).glob("*.emb"))
    assert len(shards) >= 2
    victim = max(shards, key=_shard_count)
    count = _shard_count(victim)
    data = bytearray(victim.read_bytes())
    if damage == "vector":
        data[32 + 9] ^= 0x10  # one float of the first record
    elif damage == "keys":
        data[-FOOTER.size - 5] ^= 0x01  # the key block opening reads
    elif damage == "truncated":  # e.g. a half-pulled file
        data = data[: len(data) // 2]
    else:
        data = bytearray(np.random.default_rng(2).bytes(len(data)))
    victim.write_bytes(bytes(data))

    spy = Spy(encoder)
    with caplog.at_level(logging.WARNING, logger="seedtune.retrieval.embeddings"):
        store = EmbeddingStore(tmp_path, fingerprint)
        again = rank_rows(spy, ROWS, top_k=100, max_gap=2.0, store=store)
    assert len([r for r in caplog.records if victim.name in r.getMessage()]) == 1
    sent = [t for call in spy.calls for t in call]
    assert len(sent) == (1 if damage == "vector" else count) == store.encoded
    _same_ranking(again, fresh)  # never trusted: the results are right

    spy = Spy(encoder)
    rank_rows(spy, ROWS, top_k=100, max_gap=2.0, store=EmbeddingStore(tmp_path, fingerprint))
    assert spy.calls == []  # the vectors encoded again are found next time


def test_npz_shards_are_moved_into_the_new_layout_and_deleted(encoder, tmp_path, caplog) -> None:
    """A store an older seedtune wrote (``<sha>.npz``: sha256 hex ``keys``, float32
    ``vecs``) is rewritten when opened: nothing is encoded again."""
    from seedtune.retrieval.embeddings import text_key

    fingerprint = encoder_fingerprint(encoder)
    texts = sorted(
        {QUERY_PREFIX + r["question"] for r in ROWS}
        | {PASSAGE_PREFIX + passage_text(d) for r in ROWS for d in r["documents"]}
    )
    vecs = np.asarray(encoder.encode(texts, prompt="", convert_to_numpy=True), np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    folder = tmp_path / fingerprint
    folder.mkdir()
    for name, part in (("a", slice(0, 5)), ("b", slice(5, None))):  # as the old flush wrote
        keys = [text_key(t) for t in texts[part]]
        np.savez(folder / f"{name}.npz", keys=np.array(keys), vecs=vecs[part])
    (folder / "c.npz").write_bytes(b"PK\x03\x04 half a file")
    with caplog.at_level(logging.WARNING, logger="seedtune.retrieval.embeddings"):
        store = EmbeddingStore(tmp_path, fingerprint)
    assert any("c.npz" in r.getMessage() for r in caplog.records)
    assert not list(folder.glob("*.npz")) and list(folder.glob("*.emb"))
    assert len(store) == len(texts)
    np.testing.assert_array_equal(np.stack(store.lookup(texts)), vecs)
    spy = Spy(encoder)
    store = EmbeddingStore(tmp_path, fingerprint)
    rank_rows(spy, ROWS, top_k=3, max_gap=2.0, store=store)
    assert spy.calls == [] and (store.encoded, store.reused) == (0, len(texts))


_KILLED_RUN = """
import json, sys, time
from pathlib import Path
from seedtune.retrieval.embeddings import EmbeddingStore, encoder_fingerprint
from seedtune.retrieval.rank import load_encoder, rank_stream

model_dir, store_dir, rows_path, log_path = sys.argv[1:]
model = load_encoder(model_dir, "cpu")

class Slow:  # slow enough to be killed mid-run; logs each batch once it is in the store
    tokenizer, max_seq_length = model.tokenizer, model.max_seq_length
    def encode(self, texts, **kw):
        time.sleep(0.05)
        return model.encode(texts, **kw)

store = EmbeddingStore(store_dir, encoder_fingerprint(model), flush_every=8)
rows = json.loads(Path(rows_path).read_text(encoding="utf-8"))
with open(log_path, "a") as log:
    def progress_rows():
        for row in rows:
            yield row
    class Bar:
        def set_postfix(self, **kw):
            log.write(f"{kw['encoded']}\\n")
            log.flush()
        def update(self, n):
            pass
    for _ in rank_stream(Slow(), progress_rows(), 3, 2.0, 4, store, chunk=5, progress=Bar()):
        pass
"""


def test_kill_9_mid_run_then_rerun_encodes_at_most_one_shard_again(
    tiny_models, encoder, tmp_path
) -> None:
    """Vectors go to disk a shard at a time: after ``kill -9`` the rerun encodes again at
    most what was not yet in a shard (``flush_every``) and the batch in flight."""
    from seedtune.retrieval.rank import rank_stream

    rows = [
        {
            "question": f"전세 {i}번 질문: 보증금은 어떻게 지키나요?",
            "documents": [
                _doc(f"문서 {i}-{j}", f"{i}번 질문의 {j}번째 검색 결과 요약입니다.")
                for j in range(5)
            ],
        }
        for i in range(60)
    ]
    (tmp_path / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    store_dir, progress = tmp_path / "store", tmp_path / "encoded.log"
    folder = store_dir / encoder_fingerprint(encoder)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_RUN,
            str(tiny_models.e5),
            str(store_dir),
            str(tmp_path / "rows.json"),
            str(progress),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(list(folder.glob("*.emb"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    lines = progress.read_text().split()
    encoded_before = int(lines[-1]) if lines else 0
    texts = len(rows) * 6
    assert 24 <= encoded_before < texts  # killed mid-run, after three shards

    spy = Spy(encoder)
    store = EmbeddingStore(store_dir, encoder_fingerprint(encoder))
    resumed = list(rank_stream(spy, rows, 3, 2.0, 4, store, chunk=5))
    assert store.encoded + store.reused == texts
    lost = encoded_before - store.reused  # encoded before the kill, and again now
    assert 0 <= lost < 8 + 4
    _same_ranking(resumed, rank_rows(encoder, rows, top_k=3, max_gap=2.0))


# ------------------------------------------------------------------ pages by link


def test_pages_index_finds_rows_by_link_and_the_last_crawl_wins(tmp_path, monkeypatch) -> None:
    from seedtune.retrieval import page_index
    from seedtune.retrieval.page_index import PageIndex

    _, pages = _corpus()
    pages += [
        {"link": "https://example.kr/page/0", "status": "ok", "text": "다시 긁은 본문."},
        {"link": "https://example.kr/empty", "status": "ok", "text": ""},
    ]
    path = tmp_path / "pages.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(pages).replace("\n", "\n\n", 1).encode())
    # what the stage built before: a dict of every usable row, the last one of a link winning
    expected = {p["link"]: p for p in pages if p.get("status") == "ok" and p.get("text")}
    links = {p["link"] for p in pages} | {"https://example.kr/never"}
    with PageIndex(path) as index:
        assert len(index) == len([p for p in pages if p.get("status") == "ok" and p["text"]])
        assert {link: index.get(link) for link in links} == {
            link: expected.get(link) for link in links
        }
    monkeypatch.setattr(page_index, "link_hash", lambda link: 7)  # every link clashes
    with PageIndex(path) as index:
        assert {link: index.get(link) for link in links} == {
            link: expected.get(link) for link in links
        }


def test_pages_file_with_a_bad_line_names_file_and_line(tmp_path) -> None:
    from seedtune.core.errors import InputError
    from seedtune.retrieval.page_index import PageIndex

    path = tmp_path / "pages.jsonl"
    path.write_text('{"link": "a", "status": "ok", "text": "본문"}\n{"link": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"pages\.jsonl:2: not valid JSON"):
        PageIndex(path)


# --------------------------------------------------------------------------- stage


def test_rank_stage_writes_ranked_rows_and_metrics(tiny_models, workspace) -> None:
    rank = {
        "model": str(tiny_models.e5),
        "top_k": 2,
        "max_gap": 0.5,
        "batch_size": 4,
        "device": "cpu",
    }
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
        {passage_text(d) for r in ROWS for d in r["documents"]}
    )
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
        "rank: error: params.yaml: rank.top_k: input should be greater than or equal to 1"
    )
    ws.params(rank={"device": "cpu"})
    ws.write("data/documents.jsonl", '{"question": "q"}\n')
    proc = ws.run("rank")
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (
        "rank: error: data/documents.jsonl: row 1 is not {question: str, documents: [...]}"
    )


def test_rank_stage_ranks_pages_as_all_at_once_and_checks_every_row(
    tiny_models, encoder, workspace
) -> None:
    """The stage (pages read by link, rows streamed) writes what ranking every row at once
    with every page split up front gives; a bad row late in the file is named, and leaves no
    output that looks complete."""
    from seedtune.retrieval.passages import page_passages

    rows, pages = _corpus()
    rank = {
        "model": str(tiny_models.e5),
        "top_k": 4,
        "max_gap": 2.0,
        "batch_size": 4,
        "device": "cpu",
        "passage_tokens": 32,
        "passage_overlap": 8,
    }
    ws = workspace.params(rank=rank)
    ws.write("data/documents.jsonl", rows)
    ws.write("data/pages.jsonl", pages)
    proc = ws.run("rank")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = rank_rows(
        encoder,
        rows,
        top_k=4,
        max_gap=2.0,
        batch_size=4,
        pages=page_passages(pages, encoder, 32, 8),
    )
    _same_ranking(ws.rows("data/ranked.jsonl"), expected)
    assert ws.metrics("rank")["kept_from_pages"] > 0

    (ws.path / "data/ranked.jsonl").unlink()
    ws.write("data/documents.jsonl", jsonl(rows) + '["not a row"]\n')
    proc = ws.run("rank")
    assert proc.returncode == 2
    assert last_line(proc.stderr) == (
        f"rank: error: data/documents.jsonl: row {len(rows) + 1} is not "
        "{question: str, documents: [...]}"
    )
    assert not (ws.path / "data/ranked.jsonl").exists()
