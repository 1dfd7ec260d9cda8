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
        [sys.executable, str(ROOT / "benchmarks/gpu/backbone.py"), "--tiny", "--out", str(out)],
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
