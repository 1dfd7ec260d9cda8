"""The GPU benchmark's code path stays runnable: its --tiny mode runs the same steps on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
