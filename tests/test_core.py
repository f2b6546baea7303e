"""The shared core: typed params, the one error policy, records, retries and rate limits,
device choice, credentials."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import ROOT

from seedtune.core.config import load_params
from seedtune.core.credentials import get_secret, redact
from seedtune.core.device import pick_device
from seedtune.core.errors import ConfigError, InputError, ServiceError, run_main
from seedtune.core.machine import load_machine, local_file, resolve_model
from seedtune.core.pii import TAGS, mask
from seedtune.core.records import (
    JsonlWriter,
    atomic_write_text,
    iter_jsonl,
    read_jsonl,
    read_lines,
    save_atomically,
    write_jsonl,
)
from seedtune.core.retry import AsyncTokenBucket, backoff_s, retry_after_s
from seedtune.core.text import hangul_share
from seedtune.core.versions import unmet

# --------------------------------------------------------------------------- params


def _params_with(root: Path, tmp_path: Path, dotted: str, value: object) -> Path:
    data = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    "dotted,value",
    [
        ("train.lora.r", "abc"),
        ("train.lora.r", 0),
        ("train.optim.lr", -1),
        ("search.display", 500),
        ("search.categories", ["blog", "images"]),
        ("synthesize.eval_fraction", 1.5),
        ("llm.concurrency", 0),
    ],
)
def test_bad_values_name_the_key(root: Path, tmp_path: Path, dotted: str, value: object) -> None:
    path = _params_with(root, tmp_path, dotted, value)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert dotted.split(".", 1)[1].split(".")[-1] in msg and str(path) in msg


def test_typo_key_is_an_error(root: Path, tmp_path: Path) -> None:
    path = _params_with(root, tmp_path, "train.lora.rank", 8)
    with pytest.raises(ConfigError, match=r"train\.lora\.rank"):
        load_params(path, ("train",))


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="params.yaml: missing"):
        load_params(tmp_path / "params.yaml")


# --------------------------------------------------------------------------- machine settings


def test_machine_settings_merge_defaults_local_file_and_environment(workspace, monkeypatch) -> None:
    ws = workspace.params(llm={"concurrency": 3, "timeout_s": 5})
    ws.copy_from_repo("conf/machine.yaml")
    monkeypatch.setenv("SEEDTUNE_LLM_TIMEOUT_S", "7.5")
    p = load_params(ws.path / "params.yaml", ("llm",))
    assert (p.llm.concurrency, p.llm.timeout_s) == (3, 7.5)  # local file, then environment
    assert p.llm.base_url == "https://api.openai.com/v1"  # the tracked default
    assert p.llm.model == "gpt-4o-mini"  # pipeline params come from params.yaml


def test_a_pipeline_param_in_the_local_file_is_an_error_naming_it(workspace) -> None:
    ws = workspace.params()
    ws.write("conf/local/default.yaml", "queries:\n  per_seed: 3\n")
    with pytest.raises(ConfigError, match=r"default\.yaml: queries\.per_seed: a pipeline param"):
        load_params(ws.path / "params.yaml", ("queries",))


def test_a_machine_setting_in_params_is_an_error_naming_it(workspace) -> None:
    ws = workspace.params()
    text = (ws.path / "params.yaml").read_text()
    ws.write("params.yaml", text.replace("llm:\n", "llm:\n  concurrency: 4\n", 1))
    with pytest.raises(ConfigError, match=r"params\.yaml: llm\.concurrency: a machine setting"):
        load_params(ws.path / "params.yaml", ("llm",))


def test_a_key_pasted_into_api_key_env_is_refused_without_echo(workspace) -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    ws = workspace.params(llm={"api_key_env": key})
    with pytest.raises(ConfigError) as err:
        load_params(ws.path / "params.yaml", ("llm",))
    assert "llm.api_key_env: must be the NAME" in str(err.value)
    assert key not in str(err.value) and key not in "".join(err.value.problems)
    assert key not in (ws.path / "params.yaml").read_text()


def test_a_queued_experiment_reads_its_repositorys_machine_settings(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("SEEDTUNE_LOCAL_CONF", raising=False)
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpab12cd"  # where DVC runs --queue/--temp
    (repo / "conf" / "local").mkdir(parents=True)
    (repo / "conf" / "local" / "default.yaml").write_text("rank:\n  device: cpu\n")
    copy.mkdir(parents=True)
    assert local_file(copy) == repo / "conf" / "local" / "default.yaml"
    assert load_machine(copy)["rank"]["device"] == "cpu"


def test_models_map_a_params_id_to_a_local_directory(workspace) -> None:
    ws = workspace.params(models={"google/gemma-2b-it": "/models/gemma-2b-it"})
    assert resolve_model("google/gemma-2b-it", ws.path) == "/models/gemma-2b-it"
    assert (
        resolve_model("intfloat/multilingual-e5-small", ws.path) == "intfloat/multilingual-e5-small"
    )  # unmapped: the HF cache or hub


# --------------------------------------------------------------------------- errors


def test_user_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        raise ServiceError("Naver keeps failing\nsecond line never shown")

    assert run_main("search", main) == 2
    assert capsys.readouterr().err == "search: error: Naver keeps failing\n"


def test_a_stage_that_finishes_exits_0_whatever_main_returns(tmp_path: Path) -> None:
    script = "from seedtune.core.stage import run_stage\nrun_stage('compose', lambda: True)\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    script = (
        "from seedtune.core.stage import run_stage\n"
        "def main():\n    raise KeyError('a bug')\n"
        "run_stage('rank', main)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, text=True, capture_output=True, timeout=60
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'a bug'" in proc.stderr
    assert "rank: error:" not in proc.stderr


def test_bad_input_files_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing"):
        read_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows\.jsonl:2: not valid JSON"):
        read_jsonl(bad)
    with pytest.raises(InputError, match="no such file"):
        read_lines(tmp_path / "seeds.txt")


@pytest.mark.parametrize(
    "content,message",
    [
        ("전세\n청약\n".encode("cp949"), r"seeds\.txt:1: not UTF-8 \(byte 0x"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"seeds\.txt:3: binary data"),
        ("전세\n".encode("utf-16"), r"seeds\.txt: UTF-16 text"),
    ],
)
def test_undecodable_input_is_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "seeds.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_lines(path)


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_bytes("\ufeff전세\n청약\n".encode())
    assert read_lines(path) == ["전세", "청약"]
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b"\xef\xbb\xbf" + '{"question": "전세?"}\n'.encode())
    assert read_jsonl(rows) == [{"question": "전세?"}]


# --------------------------------------------------------------------------- records


def test_directory_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    with save_atomically(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), save_atomically(target) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("killed mid-write")
    assert (target / "a.txt").read_text() == "1"  # the old one stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_jsonl_rows_stream_one_at_a_time_and_appear_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    write_jsonl(out, [{"q": "old"}])
    with pytest.raises(RuntimeError), JsonlWriter(out) as writer:
        writer.write({"q": "new 1"})
        raise RuntimeError("failed after one row")
    assert read_jsonl(out) == [{"q": "old"}]  # the complete old file, no half of the new
    # a writer killed mid-file leaves only its temp file, swept by the next writer
    (tmp_path / ".rows.jsonl.killed.tmp").write_text('{"q": "half')
    rows = ({"q": f"질문 {i}"} for i in range(3))
    assert write_jsonl(out, rows) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_jsonl_reading_is_lazy_and_keeps_line_separators_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    # crawled text carries U+2028/U+0085 unescaped (json.dumps with ensure_ascii=False)
    write_jsonl(path, [{"text": "줄\u2028바꿈\x85끝"}, {"text": "둘"}])
    assert [r["text"] for r in iter_jsonl(path)] == ["줄\u2028바꿈\x85끝", "둘"]
    path.write_bytes(b'{"a": 1}\n' + '{"a": "전세"}\n'.encode("cp949"))
    rows = iter_jsonl(path)
    assert next(rows) == {"a": 1}  # rows before the bad line are read before it is
    with pytest.raises(InputError, match=r"rows\.jsonl:2: not UTF-8"):
        next(rows)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- retries


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert 0 <= retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 1
    assert retry_after_s({}) is None and retry_after_s(None) is None


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    assert all(
        0 <= backoff_s(a) <= min(30, 0.5 * 2 ** (a - 1)) for a in range(1, 12) for _ in range(20)
    )
    assert len({backoff_s(5) for _ in range(10)}) > 1
    assert backoff_s(1, 7.0) >= 7.0  # never sooner than the server asked
    assert backoff_s(1, 1e6) <= 60  # a stuck hint does not hang the run
    assert max(backoff_s(30) for _ in range(50)) <= 30


def test_token_bucket_waits_once_the_minute_is_spent() -> None:
    async def go() -> float:
        bucket = AsyncTokenBucket(per_minute=120)  # 2 per second, a minute's burst
        await bucket.acquire(120)
        t0 = time.monotonic()
        await bucket.acquire(2)
        return time.monotonic() - t0

    assert asyncio.run(go()) >= 0.9
    assert asyncio.run(_unlimited()) < 0.1


async def _unlimited() -> float:
    bucket = AsyncTokenBucket(None)
    t0 = time.monotonic()
    for _ in range(1000):
        await bucket.acquire(10_000)
    return time.monotonic() - t0


# --------------------------------------------------------------------------- device


def test_device_choice() -> None:
    caps = {"cuda": False, "mps": False}
    assert pick_device("auto", caps=caps) == "cpu" and pick_device("cpu", caps=caps) == "cpu"
    assert pick_device("auto", caps={"cuda": True, "mps": False}) == "cuda"
    assert pick_device("auto", caps={"cuda": False, "mps": True}) == "mps"
    with pytest.raises(ConfigError, match=r"^rank\.device: 'cuda' is not available"):
        pick_device("cuda", "rank.device", caps=caps)


# --------------------------------------------------------------------------- text


def test_hangul_share() -> None:
    assert hangul_share("전세 계약") == 1.0
    assert hangul_share("LTV 규제") == pytest.approx(2 / 5)
    assert hangul_share("123 ?!") == 0.0


# --------------------------------------------------------------------------- secrets, modes


def test_dotenv_values_lose_comments_and_quotes(tmp_path: Path, monkeypatch) -> None:
    for name in ("A_KEY", "B_KEY", "C_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text("A_KEY=sk-abc  # my work key\nexport B_KEY='x y'\nC_KEY=\"q#1\"\n")
    assert get_secret("A_KEY", "test", env) == "sk-abc"
    assert get_secret("B_KEY", "test", env) == "x y"
    assert get_secret("C_KEY", "test", env) == "q#1"
    assert (
        redact("body echoed Bearer sk-abc here", ["sk-abc", None]) == "body echoed Bearer *** here"
    )


def test_written_files_honour_the_umask(tmp_path: Path) -> None:
    import stat

    path = tmp_path / "out.json"
    atomic_write_text(path, "{}")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


# --------------------------------------------------------------------------- versions


def test_installed_versions_meet_the_floors_the_code_needs() -> None:
    assert unmet(("torch", "transformers", "trl", "peft", "datasets", "accelerate")) == []
    import tomllib

    floors = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    # the versions whose APIs the code calls (see seedtune.core.versions)
    assert "transformers>=5.24" in floors and "trl>=1.16" in floors


def test_an_old_transformers_is_one_line_naming_the_floor(monkeypatch) -> None:
    import seedtune.core.versions as versions

    real = versions.version
    monkeypatch.setattr(
        versions, "version", lambda name: "5.17.0" if name == "transformers" else real(name)
    )
    (line,) = unmet(("transformers",))
    assert line.startswith("transformers 5.17.0 is installed; seedtune needs transformers>=5.24")


# --------------------------------------------------------------------------- personal data


@pytest.mark.parametrize(
    "text,kind",
    [
        ("연락처 010-1234-5678 로 문자 주세요", "phone"),
        ("사무실 02-123-4567", "phone"),
        ("+82 10 1234 5678 로 연락", "phone"),
        ("지방 031)123-4567", "phone"),
        ("메일 kim.minsu@naver.com 으로", "email"),
        ("주민번호 900101-1234567 입니다", "rrn"),
        ("외국인등록번호 9001015123456", "rrn"),
        ("카드 4111-1111-1111-1111 결제", "card"),
        ("국민은행 123456-01-234567 예금주 홍길동", "account"),
        ("계좌번호: 110-123-456789 로 입금", "account"),
        # forms found by bench/bench_pii.py: area code in parentheses, e-mail written to dodge
        # scrapers
        ("(02) 1234-5678 로 연락", "phone"),
        ("메일은 kim0101 [at] naver.com", "email"),
        ("lee.ho(골뱅이)daum.net 으로", "email"),
        # hyphens as a Korean IME types them, and spaced separators
        ("주민번호 900101－1234567", "rrn"),
        ("연락처 010 - 1234 - 5678", "phone"),
        ("휴대폰 010－9876－5432", "phone"),
        # four groups of four are written only for cards: masked even when Luhn fails
        ("카드번호 1234-5678-9012-3456", "card"),
        ("아멕스 3782-822463-10005 결제", "card"),
        ("운전면허 11-12-123456-78", "license"),
        ("면허번호 서울 12-345678-90 입니다", "license"),
        ("여권번호: M12345678 확인", "passport"),
    ],
)
def test_personal_data_is_masked(text: str, kind: str) -> None:
    masked, found = mask(text)
    assert found == {kind: 1}, masked
    assert TAGS[kind] in masked and not any(
        ch.isdigit() for ch in masked.split(TAGS[kind])[0] if kind == "rrn"
    )


@pytest.mark.parametrize(
    "text",
    [
        "매매가 3억 5천만 원, 전세 1,200,000원",
        "계약일 2024-05-01, 잔금 2024.06.30",
        "전용 84.97㎡ (25평), 59m²",
        "산12-3번지 및 123-45 필지",
        "101동 1203호",
        "1588-1234 고객센터",
        "우리 아파트 101-1203",
        "2023년 12월 31일까지 신청",
        "LTV 70%, DSR 40%",
        "분양가 9억 8,000만 원",
        "전화번호를 남겨 주세요",
        "(주)한국부동산 (2024)",
        "면적(84㎡) 기준",
        "사건번호 2024가단12345",
        "주문번호 2024112712345679",
        "모델명 M12345678 보일러",
        "기간 2024 - 05 - 01",
    ],
)
def test_look_alikes_are_not_masked(text: str) -> None:
    assert mask(text) == (text, {})
