"""The wm-hub command: help on every task, tiny-model, predict and demo outputs, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from wm_hub.cli import build_parser, main, path_error

TASKS = ["tiny-model", "convert-vqgan", "predict", "demo", "keyframes"]
DATA_TASKS = ["build", "show-weights"]


def test_top_level_help_lists_every_task():
    result = subprocess.run([sys.executable, "-m", "wm_hub.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for task in TASKS:
        assert task in result.stdout
    assert "inverse dynamics" in result.stdout


HEAVY = ("torch", "transformers", "datasets", "diffusers", "trl", "peft", "accelerate")


def test_import_and_help_stay_light():
    """``import wm_hub`` and ``wm-hub --help`` import none of the ML libraries (they load on first use)."""
    code = (
        "import sys, contextlib, io\n"
        "import wm_hub\n"
        "from wm_hub.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_import_wm_hub_registers_the_pipeline_tasks_when_transformers_pipelines_loads():
    code = (
        "import sys\n"
        "import wm_hub\n"
        "assert 'transformers.pipelines' not in sys.modules\n"
        "from transformers import pipeline\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "from wm_hub.inference.forward_dynamics import ForwardDynamicsPipeline\n"
        "tasks = PIPELINE_REGISTRY.supported_tasks\n"
        "print(tasks['forward-dynamics']['impl'] is ForwardDynamicsPipeline, 'inverse-dynamics' in tasks)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True"]


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


def test_tiny_model_refuses_a_size_its_vq_cannot_tile_and_an_out_that_is_a_file(tmp_path):
    with pytest.raises(SystemExit, match="--image-size must be a multiple of 8"):
        main(["tiny-model", "--arch", "chameleon", "--out", str(tmp_path / "m"), "--image-size", "7"])
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(SystemExit, match=f"--out {a_file} is a file: give a folder"):
        main(["tiny-model", "--arch", "chameleon", "--out", str(a_file)])
    assert a_file.read_text() == "x" and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--lr", "-1"], "--lr must be > 0, got -1.0"),
        (["--noise", "-0.1"], "--noise must be >= 0, got -0.1"),
    ],
)
def test_sandbox_tokenizer_refuses_settings_it_cannot_train_with(tmp_path, option, message):
    with pytest.raises(SystemExit, match=message):
        main(["sandbox", "tokenizer", "--out", str(tmp_path / "t"), *option])
    assert not (tmp_path / "t").exists()


def test_convert_vqgan_names_a_file_that_is_no_taming_checkpoint(tmp_path):
    import torch

    text = tmp_path / "notes.ckpt"
    text.write_text("x")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"lm_head.weight": torch.zeros(2)}}, other)
    small = tmp_path / "small.ckpt"
    torch.save({"state_dict": {"quantize.embedding.weight": torch.zeros(2)}}, small)
    for ckpt, message in (
        (text, "not a torch checkpoint"),
        (other, r"not a taming VQGAN checkpoint \(unexpected key 'lm_head.weight'\)"),
        (small, "its weights do not fit the VQGAN config"),
    ):
        with pytest.raises(SystemExit, match=f"--ckpt {ckpt}: {message}"):
            main(["convert-vqgan", "--ckpt", str(ckpt), "--out", str(tmp_path / "vq")])
    assert not (tmp_path / "vq").exists()


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
    assert main([*args, "--num-candidates", "1", "--out", str(out), "--seed", "3"]) == 0  # a rerun, fewer candidates
    assert sorted(p.name for p in out.iterdir()) == ["candidate_0.png", "prediction.json"]  # no stale candidate_1


def test_predict_refuses_bad_arguments_before_loading_the_model(tmp_path):
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(source)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(source.read_bytes()[:60])
    idm = tmp_path / "an-idm"
    idm.mkdir()
    (idm / "training_run.json").write_text(json.dumps({"task": "idm"}))
    model = tmp_path / "never-loaded"  # no model there: each refusal comes before loading
    base = ["predict", "--model", str(model), "--image", str(source), "--action", "x", "--out", str(tmp_path / "o")]
    for extra, message in (
        (["--num-candidates", "0"], "--num-candidates must be >= 1, got 0"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--top-k", "0"], "--top-k must be an integer >= 1"),
        (["--top-p", "1.5"], r"--top-p must be in \(0, 1\]"),
        (["--action", "  "], "--action is blank"),
        (["--out", str(source)], "is a file: give an output folder"),
        (["--model", str(idm)], "fine-tuned as an IDM"),
        (["--image", str(truncated)], "truncated.png: "),
    ):
        with pytest.raises(SystemExit, match=message):
            main([*base, *extra])
    assert not (tmp_path / "o").exists()


def test_predict_reports_a_bad_image(tiny_model_dirs, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    base = ["predict", "--model", str(tiny_model_dirs("chameleon")), "--action", "x", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="broken.png: not an image"):
        main([*base, "--image", str(broken)])
    with pytest.raises(SystemExit, match="missing.png: no such file"):
        main([*base, "--image", str(tmp_path / "missing.png")])


def test_a_bad_device_or_dtype_is_one_line_before_the_model_loads(tiny_model_dirs, tmp_path):
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(source)
    base = ["predict", "--model", str(tiny_model_dirs("chameleon")), "--image", str(source), "--action", "x"]
    base += ["--out", str(tmp_path / "o")]
    for extra, message in (
        (["--device", "banana"], "device 'banana' is not a torch device"),
        (["--device", "cuda:7"], "device 'cuda:7': this machine has"),
        (["--dtype", "float99"], "dtype 'float99' is not a torch dtype"),
    ):
        with pytest.raises(SystemExit, match=message):
            main([*base, *extra])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (FileExistsError(17, "File exists", "out"), "out is a file, and a folder is needed there"),
        (
            IsADirectoryError(21, "Is a directory", ".out.1.tmp", None, "out"),
            "out is a folder, and a file is needed there",
        ),
        (NotADirectoryError(20, "Not a directory", "out/x"), "out/x: a part of this path is a file, not a folder"),
        (PermissionError(13, "Permission denied", "out"), "out: permission denied"),
    ],
)
def test_a_path_of_the_wrong_kind_is_named_in_one_line(error, line):
    assert path_error(error) == line


def test_an_out_of_the_wrong_kind_is_one_error_line_not_a_traceback(tmp_path):
    rows = tmp_path / "rows.jsonl"
    row = {"id": "a", "source": "s.png", "target": "t.png", "action": "go", "action_class": "go", "score": -1.0}
    rows.write_text(json.dumps(row) + "\n")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    with pytest.raises(SystemExit, match=f"error: {a_folder} is a folder, and a file is needed there"):
        main(["sample", "--input", str(rows), "--out", str(a_folder), "--k", "1"])
    assert [path.name for path in a_folder.iterdir()] == [] and [p.name for p in tmp_path.glob(".*tmp")] == []


@pytest.mark.slow
def test_demo_refuses_sizes_below_one_before_training(tmp_path):
    # --num-eval 0 trained both models for minutes, then failed on the empty evaluation
    for flag, name in (
        ("--num-eval", "num_eval"),
        ("--num-videos", "num_videos"),
        ("--k", "k"),
        ("--train-steps", "train_steps"),
    ):
        with pytest.raises(SystemExit, match=f"error: DemoConfig: {name} must be >= 1"):
            main(["demo", "--out", str(tmp_path / "d"), flag, "0"])
    assert not (tmp_path / "d").exists()


def test_demo_runs_the_whole_loop_offline(tmp_path, capsys):
    """A short `wm-hub demo` on a random sandbox base: every stage through the real commands, report written."""
    from wm_hub.sandbox.pretrain import SandboxPretrainConfig, build_sandbox_base

    base = tmp_path / "base"
    tokenizer = Path(__file__).resolve().parents[1] / "sandbox" / "tokenizer"
    build_sandbox_base(SandboxPretrainConfig(vqgan=str(tokenizer), hidden_size=32, num_layers=1)).save_pretrained(base)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--base", str(base), "--train-steps", "2", "--num-eval", "3",
            "--num-videos", "2", "--k", "4"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_eval"] == 3 and (summary["world"]["image_size"], summary["world"]["grid"]) == (32, 4)
    labels = summary["video_labels"]
    # a pair the IDM wrote no action for is no label (2 training steps: often every pair)
    assert labels["pairs"] == 10 and labels["sampled"] == min(4, labels["pairs"] - labels["blank_actions"])
    fdm_mixture = json.loads((out / "fdm" / "training_run.json").read_text())["mixture"]
    assert any(source["label"] == "synthetic_triplets" for source in fdm_mixture["sources"]) == (labels["sampled"] > 0)
    no_labels = "the IDM wrote no action for any of them: the FDM trained on the labelled triplets alone"
    assert (no_labels in (out / "report.md").read_text()) == (labels["sampled"] == 0)
    assert summary["video_label_accuracy"] == summary["video_labels"]["accuracy"]
    assert 0.0 <= summary["video_label_accuracy"] <= 1.0
    for key in ("fdm", "best_of_8", "copy"):
        assert {"whole_image", "changed_cells", "all_cells"} == set(summary[key])
    assert summary["copy"]["changed_cells"] == 0.0 and 0 < summary["copy"]["all_cells"] < 1
    stages = {"train_idm_s", "videos_s", "keyframes_s", "annotate_s", "sample_s", "train_fdm_s", "evaluate_s"}
    if labels["sampled"] == 0:  # nothing to sample: the stage does not run
        stages.remove("sample_s")
    assert stages | {"total_s"} <= set(summary["wall_times"])
    assert Image.open(out / "demo_grid.png").height > 3 * 96 and "| best_of_8 |" in (out / "report.md").read_text()
    fdm_run = json.loads((out / "fdm" / "training_run.json").read_text())
    assert fdm_run["task"] == "fdm" and json.loads((out / "idm" / "training_run.json").read_text())["task"] == "idm"
    # each fine-tune's training loop, as its Trainer measured it, tells a slower machine from slower code
    assert summary["wall_times"]["fdm_training_loop_s"] == fdm_run["metrics"]["train_runtime"] > 0
    assert 0 < summary["wall_times"]["idm_training_loop_s"] < summary["wall_times"]["train_idm_s"]
    assert "s the FDM's training loop" in (out / "report.md").read_text()
    # a rerun skips every finished training and sampling stage
    capsys.readouterr()
    assert main(args) == 0
    assert not {"train_idm_s", "videos_s", "sample_s", "train_fdm_s"} & set(
        json.loads((out / "summary.json").read_text())["wall_times"]
    )


def test_a_failed_demo_stage_is_one_error_line_and_keeps_the_finished_stages(tmp_path, monkeypatch):
    import subprocess

    import wm_hub.demo

    def fail(command: list[str]) -> None:  # e.g. a video tree that `wm-hub keyframes` refuses
        raise subprocess.CalledProcessError(1, command)

    out = tmp_path / "demo"
    (out / "idm").mkdir(parents=True)
    (out / "idm" / "config.json").write_text("{}")  # a finished IDM stage: skipped
    monkeypatch.setattr(wm_hub.demo, "_run", fail)
    monkeypatch.setattr(wm_hub.demo, "write_sandbox_videos", lambda folder, count: None)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(out)])
    message = str(exit_info.value.code)
    assert message.startswith("error: the demo's keyframes stage failed (exit status 1;") and "\n" not in message
    assert "rerun the same command" in message and (out / "idm" / "config.json").read_text() == "{}"


def test_config_flag_forms_and_mistakes_are_one_line(tmp_path, capsys):
    from wm_hub.cli import tasks
    from wm_hub.config_parser import parse_config

    recipe = tmp_path / "sample.yaml"
    recipe.write_text(f"input: {tmp_path / 'annotated'}\nout: {tmp_path / 'kept.jsonl'}\nk: 3\n")
    parser = tasks()[("sample",)].parser
    files, config = parse_config(parser(), [f"--config={recipe}", "--k", "5"])  # = form; the flag overrides
    assert config.k == 5 and str(files.out) == str(tmp_path / "kept.jsonl")
    for argv, message in (
        (["--config"], "error: --config takes one YAML file of options"),
        (["--config", str(tmp_path)], f"error: --config {tmp_path} is a folder: give a YAML file of options"),
        (["--config", str(recipe), "--frobnicate=1"], "error: unknown option(s): --frobnicate"),
        (["--config", str(recipe), "--scor-field", "mean"], "error: unknown option(s): --scor-field (did you mean"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_config(parser(), argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith(message)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["keyframes", "--out", "", "clip.mp4"], "error: --out is blank"),  # would write into the current folder
        (["keyframes", "--out", "kf", ""], "error: a positional argument is blank"),  # would search the whole cwd
        (["keyframes", "--num-keyframes", "3", "--out", "kf", ""], "error: a positional argument is blank"),
        (["sample", "--input=", "--out", "o.jsonl", "--k", "2"], "error: --input is blank"),
        (
            ["rollout", "--fdm", "m", "--image", "i.png", "--actions", "a", "", "--out", "o"],
            "error: --actions is blank",
        ),
    ],
)
def test_a_blank_command_line_value_is_one_error_line_before_any_work(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("task", "recipe", "line"),
    [
        ("keyframes", "videos: clip.mp4\nout: kf\n", "videos: a list is needed, got the string 'clip.mp4' (write "
         "['clip.mp4'])"),  # it was read as the 8 videos 'c', 'l', 'i'...
        ("rollout", "fdm: m\nimage: a.png\nactions: go\nout: r\n", "actions: a list is needed, got the string "
         "'go' (write ['go'])"),  # two steps, 'g' and 'o'
        ("generate", "fdm: m\nimage: [a.png]\naction: go\nout: g.png\n", "key image: one value is needed, got a "
         "list: ['a.png']"),  # a traceback
        ("generate", "fdm: m\nimage: a.png\naction: yes\nout: g.png\n", "key action: text is needed, got the "
         "bool True: quote the value"),  # YAML's boolean, a traceback at .strip()
        ("sample", "input: rows.jsonl\nout: kept.jsonl\nk: 2.5\n", "key k: an integer is needed, got 2.5"),
    ],
)  # fmt: skip
def test_a_recipe_value_of_the_wrong_shape_is_one_error_line(tmp_path, monkeypatch, capsys, task, recipe, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "task.yaml").write_text(recipe)
    with pytest.raises(SystemExit) as exit_info:
        main([task, "--config", "task.yaml"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: recipe task.yaml: {line}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["task.yaml"]


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-5", "4294967296"])
def test_a_seed_numpy_cannot_take_is_one_error_line_before_the_model_loads(tmp_path, capsys, seed):
    # 2**70 was "error: Overflow when unpacking long long" after loading the model; set_seed(2**32) fails in numpy
    argv = ["generate", "--fdm", str(tmp_path / "no-model"), "--image", "a.png", "--action", "go", "--out", "o.png"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--seed", seed])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: seed must be in [0, 4294967295] (what numpy takes), got {seed}"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_and_exit_status_130_not_a_traceback(tmp_path, monkeypatch, capsys):
    from wm_hub.bootstrap import sampling

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sampling, "sample_annotations", interrupted)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "score": 0.0, "action_class": "x"}) + "\n")
    assert main(["sample", "--input", str(rows), "--out", str(tmp_path / "kept.jsonl"), "--k", "1"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == (
        "interrupted `wm-hub sample`: no half-written file is left (key frames, annotation, evaluation and training "
        "go on from where they stopped when rerun the same way)"
    )
