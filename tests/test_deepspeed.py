"""DeepSpeed (installed by the dev extra) trains a backbone: ZeRO-2 steps on the FDM loss, on CPU."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is the 'deepspeed' extra; `make test` installs it via 'dev'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_zero2_steps_reduce_the_fdm_loss(tiny_model_dirs, tmp_path):
    result_path = tmp_path / "result.json"
    script = Path(__file__).with_name("deepspeed_zero2_step.py")
    env = {**os.environ, "MASTER_PORT": str(_free_port())}
    completed = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dirs("chameleon")), str(result_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert result["zero_stage"] == 2
    assert all(math.isfinite(loss) for loss in result["losses"])
    assert result["losses"][-1] < result["losses"][0]
    assert result["image_rows_changed"]
