"""The GPU benchmark's code path stays runnable: its --tiny mode runs the same steps on the CPU; the sampling A/B
compares what it says it does."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import LogitsProcessorList

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_backbone_benchmark_tiny_mode(tmp_path):
    out = tmp_path / "gpu_tiny.json"
    completed = subprocess.run(
        # one batch size: each (cache, batch) compiles its own static-cache decode step, which the CPU pays for
        [sys.executable, str(ROOT / "benchmarks/gpu/backbone.py"), "--tiny", "--batches", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["shape"]["image_seq_len"] == 64
    generation = json.dumps(result["generation"])
    assert "static" in generation and "dynamic" in generation
    assert result["vq"]


@pytest.mark.slow
def test_gpu_training_benchmark_tiny_mode_trains_with_the_weighted_loss(tmp_path):
    out = tmp_path / "training_tiny.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu/training.py"), "--tiny", "--steps", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT / "benchmarks/gpu",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["shape"]["sequence_len"] > 2 * result["shape"]["image_seq_len"]
    assert 0 < result["shape"]["trainable_parameters"] < result["shape"]["lm_parameters"] / 10  # LoRA only
    assert len(result["step_s"]["all"]) == 2 and result["tokens_per_s"] > 0
    assert len(result["losses"]) == 4 and all(loss > 0 for loss in result["losses"])  # warm-up + timed steps


def test_sampling_benchmark_compares_the_gumbel_max_sampler_with_torch_multinomial(monkeypatch, tiny_backbones):
    from wm_hub.inference.generation import generate_images

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench_sampling = importlib.import_module("bench_sampling")
    backbone = tiny_backbones("chameleon")
    prompt = backbone.build_fdm_sequence(Image.new("RGB", (64, 64), "red"), "move the square").input_ids
    gumbel = generate_images(backbone, [prompt], seed=0, decode=False).image_ids[0, 0]
    with bench_sampling.multinomial_sampling():
        multinomial = generate_images(backbone, [prompt], seed=0, decode=False).image_ids[0, 0]
    torch.manual_seed(0)  # the multinomial arm is transformers' own sampling of the same masked scores
    reference = backbone.model.generate(
        input_ids=torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=True,
        top_k=0,
        max_new_tokens=len(backbone.generation_layout()),
        logits_processor=LogitsProcessorList([backbone.image_logits_processor(len(prompt))]),
        pad_token_id=backbone.pad_token_id,
    )[0, len(prompt) :]
    assert torch.equal(multinomial, reference[backbone.generation_layout() < 0])
    assert not torch.equal(gumbel, multinomial)
    assert generate_images(backbone, [prompt], seed=0, decode=False).image_ids[0, 0].equal(gumbel)  # arm restored


def test_verification_benchmark_runs_every_case_and_skips_an_unknown_family(tmp_path):
    out = tmp_path / "verification.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_verification.py"), "--archs", "chameleon", "no-such-family"]
        + ["--candidates", "2", "--repeats", "2", "--threads", "1", "--text", "bpe", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["skipped_archs"] == ["no-such-family"] and list(result["results"]) == ["chameleon"]
    assert 0 < result["settings"]["text_merges"] <= 256
    chameleon = result["results"]["chameleon"]
    # BPE text: the FDM prompt is the image (64 codes + 2 layout tokens), bos and far fewer text tokens than bytes
    assert 66 < chameleon["fdm_prompt_len"] < 66 + len("move the cyan circle up by 3 cells")
    assert chameleon["generated_tokens_per_image"] == 65
    for name in ("one_sample", "best_of_2", "best_of_2_shared_vq", "generation_2", "scoring_2"):
        assert len(chameleon["timings"][name]["samples_s"]) == 2 and chameleon["timings"][name]["min_s"] > 0
    ratios = chameleon["ratios"]
    one, shared = chameleon["timings"]["one_sample"], chameleon["timings"]["best_of_2_shared_vq"]
    assert ratios["best_of_2_shared_vq_over_one_sample"] == pytest.approx(shared["median_s"] / one["median_s"])
    paired = sorted(s / o for s, o in zip(shared["samples_s"], one["samples_s"]))
    assert ratios["best_of_2_shared_vq_over_one_sample_paired"] == pytest.approx(sum(paired) / 2)
