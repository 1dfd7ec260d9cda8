"""The sandbox study at its --quick size: every part runs from the shipped base and writes its files and figures.

The quick size trains each model for a few steps, so only the structure is asserted (and that every figure is a
finite fraction), not the values; ``benchmarks/results/sandbox_study`` holds the default-size run.
"""

import json
import subprocess
import sys

import pytest

from wm_hub.sandbox.study import PARTS, VARIANTS, StudyConfig, finite_fractions, run_study
from wm_hub.sandbox.study_report import PLOTS


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    """``wm-hub sandbox study --quick``, the command a user runs."""
    out = tmp_path_factory.mktemp("study")
    command = [sys.executable, "-m", "wm_hub.cli", "sandbox", "study", "--out", str(out), "--quick"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report.md" in result.stdout
    return StudyConfig.quick(out=out), json.loads((out / "results.json").read_text())


def test_quick_study_writes_every_part(quick_study):
    config, results = quick_study
    out = config.out
    for name in ("results.json", "report.md", *PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert set(PARTS) <= set(results)
    assert finite_fractions(results) == []

    curve = results["asymmetry"]
    assert curve["steps"] == [0, 3, 6]
    assert len(curve["idm_exact_match"]) == 3 and len(curve["fdm"]["changed_cells"]) == 3
    assert curve["num_labelled"] == [16, 64]
    table = results["table4"]
    assert set(table["variants"]) == set(VARIANTS)
    assert all(set(v["seeds"]) == {"0", "1"} for v in table["variants"].values())
    assert set(table["wilcoxon_against_full"]) == set(VARIANTS) - {"full"}
    assert table["num_kept"] == min(config.k, table["num_pairs"] - table["blank_actions"])
    assert results["scaling"]["blank_actions"] == table["blank_actions"]  # the same labeller's annotation
    scaling = results["scaling"]
    assert scaling["k"] == [0, 8] and len(scaling["stratified"]) == len(scaling["random"]) == 2
    assert [row["idm_step"] for row in scaling["labellers"]] == [3, 6]
    assert set(results["probe"]) == {"base", "idm", "fdm"}
    for model in results["probe"].values():
        assert set(model) == {"forward", "inverse"}
        assert {"random_action", "random_target", "copy", "inverse", "counterfactual"} == set(model["forward"])
    best = results["best_of_n"]
    assert best["n"] == [1, 2]
    # with one candidate every choice is the same sample
    assert len({best[key]["changed_cells"][0] for key in ("verifier", "oracle", "random")}) == 1
    assert all(o >= v for o, v in zip(best["oracle"]["all_cells"], best["verifier"]["all_cells"]))
    rollouts = results["rollouts"]
    assert rollouts["steps"] == [1, 2] and set(rollouts) >= {"greedy", "sampled", "verified", "copy"}
    grpo = results["grpo"]
    assert grpo["grpo_steps"] == 2
    for name in ("sft", "grpo", "sft_matched"):
        assert set(grpo["fdm"]["seeds"][name]) == {"0", "1"} and set(grpo["idm"]["seeds"][name]) == {"0", "1"}
        assert set(grpo["fdm"]["mean"][name]) == {"greedy", "n1", "best_of_2"}
    # the SFT FDM of the GRPO part is Table 4's full method, measured once
    assert grpo["fdm"]["seeds"]["sft"]["0"]["greedy"] == table["variants"]["full"]["seeds"]["0"]
    for task in ("fdm", "idm"):
        assert all(len(curve) == 2 and all(r <= 0.0 for r in curve) for curve in grpo["rewards"][task].values())
        assert all(steps > 0 for steps in grpo["matched_extra_steps"][task])  # GRPO's seconds bought SFT steps
    assert all(seconds > 0 for seconds in grpo["seconds_per_step"].values())
    rewarded_by = {
        run: json.loads((config.out / "runs" / run / "training_run.json").read_text())["reward_model"]
        for run in ("fdm-grpo-seed1", "idm-grpo-seed1")
    }
    assert rewarded_by["fdm-grpo-seed1"].endswith("idm-curve")
    assert rewarded_by["idm-grpo-seed1"].endswith("fdm-full-seed1")

    report = (out / "report.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert heading in report
    assert report.count("reproduced**") >= 10


def test_quick_study_resumes_without_training_again(quick_study):
    config, results = quick_study
    done = config.out / "runs" / "fdm-full-seed0" / "training_run.json"
    stamp = done.stat().st_mtime_ns
    again = run_study(config)
    assert done.stat().st_mtime_ns == stamp
    again = json.loads(json.dumps(again))
    assert again["table4"] == results["table4"] and again["best_of_n"] == results["best_of_n"]
    assert again["wall_times"]["this_run_s"] < 60
    assert again["wall_times"]["total_s"] >= results["wall_times"]["total_s"]  # summed over both runs


def test_study_config_refuses_inconsistent_sizes(tmp_path):
    with pytest.raises(ValueError, match="multiple of curve_every"):
        StudyConfig(out=tmp_path, curve_steps=250, curve_every=100)
    with pytest.raises(ValueError, match="labeller_steps"):
        StudyConfig(out=tmp_path, labeller_steps=(150,))
    with pytest.raises(ValueError, match="data_sizes"):
        StudyConfig(out=tmp_path, data_sizes=(8000,))
    with pytest.raises(ValueError, match="two seeds"):
        StudyConfig(out=tmp_path, seeds=(0,))


def test_study_command_names_a_missing_base(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "wm_hub.cli", "sandbox", "study", "--out", str(tmp_path / "s"), "--quick",
         "--base", str(tmp_path / "nowhere")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no sandbox base at" in result.stderr and "nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def test_finite_fractions_finds_bad_figures():
    assert finite_fractions({"a": [0.5, 1.0], "config": {"lr": 3.0}, "wall_times": {"total_s": 99.0}}) == []
    assert finite_fractions({"grpo": {"rewards": {"fdm": {"0": [-0.7]}}, "seconds_per_step": {"fdm_grpo": 0.9}}}) == []
    assert finite_fractions({"a": {"b": [0.2, float("nan")]}, "c": 1.5}) == ["/a/b[1]", "/c"]
