"""The wm-hub command: help on every task, tiny-model, predict and demo outputs, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from wm_hub.cli import build_parser, main

TASKS = ["tiny-model", "convert-vqgan", "predict", "demo", "keyframes"]
DATA_TASKS = ["build", "show-weights"]


def test_top_level_help_lists_every_task():
    result = subprocess.run([sys.executable, "-m", "wm_hub.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for task in TASKS:
        assert task in result.stdout
    assert "inverse dynamics" in result.stdout


@pytest.mark.parametrize("task", TASKS)
def test_task_help_explains_itself(task, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([task, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: wm-hub {task}" in text and "--out" in text and len(text) > 300


@pytest.mark.parametrize("task", DATA_TASKS)
def test_data_task_help_explains_itself(task, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["data", task, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: wm-hub data {task}" in text and "--out" in text and "example" in text


def test_tiny_model_rejects_unknown_arch(capsys):
    with pytest.raises(SystemExit):
        main(["tiny-model", "--arch", "janus", "--out", "x"])
    assert "invalid choice: 'janus'" in capsys.readouterr().err


def test_predict_writes_candidates_and_summary(tiny_model_dirs, tmp_path, capsys):
    source = tmp_path / "source.jpg"
    Image.new("RGB", (120, 80), (10, 200, 30)).save(source)
    out = tmp_path / "preds"
    args = ["predict", "--model", str(tiny_model_dirs("liquid")), "--image", str(source), "--action", "open it"]
    assert main([*args, "--num-candidates", "2", "--out", str(out), "--seed", "3"]) == 0
    summary = json.loads((out / "prediction.json").read_text())
    assert summary["action"] == "open it" and len(summary["images"]) == 2
    for path in summary["images"]:
        assert Image.open(path).size == (64, 64)
    assert not list(out.glob("*.tmp"))


def test_predict_reports_a_bad_image(tiny_model_dirs, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    base = ["predict", "--model", str(tiny_model_dirs("chameleon")), "--action", "x", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="broken.png: not an image"):
        main([*base, "--image", str(broken)])
    with pytest.raises(SystemExit, match="missing.png: no such file"):
        main([*base, "--image", str(tmp_path / "missing.png")])


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_offline(tmp_path, capsys):
    """A short `wm-hub demo`: fitted VQGAN, IDM and FDM trained by accelerate launch, grid and summary written."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--fit-steps", "5", "--train-steps", "2", "--num-eval", "2"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_eval"] == 2 and 0 <= summary["idm_exact_match"] <= 1
    assert summary["copy_baseline_token_accuracy"]["changed"] == 0.0
    assert 0 <= summary["fdm_token_accuracy"]["all"] <= 1
    assert {"fit_vqgan_s", "train_idm_s", "train_fdm_s", "evaluate_s", "total_s"} <= set(summary["wall_times"])
    assert Image.open(out / "demo_grid.png").size == (4 * 128, 2 * (128 + 28))
    for task in ("idm", "fdm"):
        run = json.loads((out / task / "training_run.json").read_text())
        assert run["task"] == task
    # a rerun skips every finished stage
    capsys.readouterr()
    assert main(args) == 0
    assert set(json.loads((out / "summary.json").read_text())["wall_times"]) == {"evaluate_s", "total_s"}
