"""`seedtune export`: the adapter merged into a standalone model that computes what the
adapter did."""

from __future__ import annotations

from pathlib import Path


def test_export_merges_into_a_standalone_model(trained, tmp_path: Path) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seedtune.cli import main

    out, _, _ = trained
    merged = tmp_path / "merged"
    assert main(["export", "--adapter", str(out), "--out", str(merged)]) == 0
    assert not (merged / "adapter_config.json").exists()
    assert AutoTokenizer.from_pretrained(merged).chat_template
    ids = torch.tensor([[2, 5, 100, 200, 300]])
    with torch.no_grad():
        want = AutoPeftModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_export_without_adapter_is_one_line(tmp_path: Path) -> None:
    from seedtune.cli import main

    assert main(["export", "--adapter", str(tmp_path / "none")]) == 2
